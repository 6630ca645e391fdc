"""Options that several commands share, defined once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

Conditions = Annotated[list[str] | None, typer.Option(
    "--condition", "-c", help="Categorical obs column (train) or KEY=VALUE (sample); repeatable.")]
Doses = Annotated[list[str] | None, typer.Option(
    "--dose", help="Continuous obs column (train) or KEY=VALUE (sample); repeatable.")]
Features = Annotated[list[str] | None, typer.Option(
    "--condition-features", help="KEY=TABLE: numeric features of a condition's categories (.csv "
    "or .parquet, one row per category, its name first), so categories no cell has can be "
    "sampled; repeatable.")]
Smiles = Annotated[list[str] | None, typer.Option(
    "--smiles", help="KEY=TABLE: a SMILES per category (.csv: name, smiles), as Morgan "
    "fingerprint features (needs pip install 'scdiff[chem]').")]
LossWeighting = Annotated[str, typer.Option(
    help="Timestep weights of the loss: snr_cap (nearly clean steps capped at SNR 5), min_snr "
         "(also noisy steps down; measured better on panels with many more genes than cells) or "
         "none.")]
Seed = Annotated[int, typer.Option(help="Random seed.")]
Device = Annotated[str, typer.Option(help="auto (CUDA when present), cpu, cuda or cuda:N.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
Overwrite = Annotated[bool, typer.Option(help="Replace an existing output.")]
Json = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
Layer = Annotated[str | None, typer.Option(help="Use adata.layers[LAYER] instead of X.")]
Genes = Annotated[int, typer.Option(help="Keep this many highly variable genes.")]
Run = Annotated[Path, typer.Argument(help="Run directory written by `scdiff train`.")]
Threads = Annotated[str, typer.Option(
    help="CPU threads: auto (the CPUs this process may use, less those other jobs keep busy) "
         "or a number.")]
Kind = Annotated[str, typer.Option(
    help="auto, tabular (a plain table: numbers of any scale, categories, missing values) or "
         "expression. auto: a .csv/.parquet is expression only with >= 100 feature columns, "
         "all numeric and complete.")]
Space = Annotated[str, typer.Option(
    help="Where the diffusion runs: gene (the --genes most variable genes), pca (their principal "
         "components), latent (an autoencoder trained first, whose count decoder writes every "
         "gene; needs counts or an n_counts column) or auto (latent where library sizes are "
         "known, else gene).")]
LatentDim = Annotated[int | None, typer.Option(
    help="Dimensions of the pca or latent space (default: pca 32, latent 64; "
    "a PCA of fewer genes: one less than them).")]
AutoencoderSteps = Annotated[int | None, typer.Option(
    help="Steps of the latent space's autoencoder (default: from the data size, or --steps).")]
