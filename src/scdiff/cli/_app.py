"""The typer app. Each command parses its options, calls one function of
:mod:`scdiff.commands` and prints what it returns; the policy lives in the library."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from scdiff import __version__
from scdiff.cli._boundary import boundary
from scdiff.cli._options import (
    AutoencoderSteps,
    Conditions,
    Device,
    Doses,
    Features,
    Genes,
    Json,
    Kind,
    LatentDim,
    Layer,
    LossWeighting,
    Overwrite,
    Quiet,
    Run,
    Seed,
    Smiles,
    Space,
    Threads,
)
from scdiff.cli._parse import (
    parse_assignments,
    parse_doses,
    parse_features,
    parse_guidance,
    parse_number,
    parse_threads,
)

app = typer.Typer(
    name="scdiff", no_args_is_help=True, add_completion=True, pretty_exceptions_enable=False,
    help="Train conditional diffusion models on single-cell data and generate cells.",
)
out_console = Console()


def _version(value: bool) -> None:
    if value:
        out_console.print(f"scdiff {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
) -> None:
    """scdiff: conditional diffusion for single-cell expression."""


@app.command()
@boundary
def train(
    data: Annotated[list[Path], typer.Argument(
        help=".h5ad, .csv or .parquet with cells as rows; several .h5ad files (or a folder of "
             "them) are read together out of core.")],
    condition: Conditions = None,
    dose: Doses = None,
    condition_features: Features = None,
    smiles: Smiles = None,
    layer: Layer = None,
    genes: Genes = 2000,
    out: Annotated[Path | None, typer.Option(help="Run directory (default runs/<data name>).")] = None,
    epochs: Annotated[int | None, typer.Option(help="Passes over the data (default: from its size).")] = None,
    steps: Annotated[int | None, typer.Option(help="Optimizer steps (instead of --epochs).")] = None,
    batch_size: Annotated[int | None, typer.Option(
        help="Cells per step (default 256; with --preset atlas, from the device's memory).")] = None,
    lr: Annotated[float | None, typer.Option(
        help="Peak learning rate (default 1e-3 at batch 256, x sqrt(batch / 256)).")] = None,
    device: Device = "auto",
    precision: Annotated[str, typer.Option(help="auto, fp32, bf16 or fp16.")] = "auto",
    seed: Seed = 0,
    overwrite: Overwrite = False,
    resume: Annotated[bool, typer.Option(
        help="Continue the interrupted run in --out from its checkpoint (same data and options).")] = False,
    backed: Annotated[bool, typer.Option(
        help="Read the .h5ad in row chunks instead of loading it (data larger than memory).")] = False,
    monitor: Annotated[float | None, typer.Option(
        help="Hold out this fraction of cells and log the MMD of a small generated sample to them.")] = None,
    monitor_every: Annotated[int, typer.Option(help="Steps between two monitor evaluations.")] = 250,
    patience: Annotated[int | None, typer.Option(
        help="With --monitor: stop after this many evaluations without improvement.")] = None,
    loss_weighting: LossWeighting = "snr_cap",
    clip_negative: Annotated[bool, typer.Option(
        help="Set negative values (the small ones smoothing or imputation leaves) to 0.")] = False,
    schedule: Annotated[str, typer.Option(
        help="The objective: cosine or linear (a diffusion predicting v), or flow (a rectified "
             "flow predicting the velocity).")] = "cosine",
    preset: Annotated[str, typer.Option(
        help="default, or atlas (millions of cells): the largest batch the GPU's memory holds "
             "and CUDA graphs; batch 4096 on the CPU.")] = "default",
    space: Space = "auto",
    latent_dim: LatentDim = None,
    autoencoder_steps: AutoencoderSteps = None,
    kind: Kind = "auto",
    threads: Threads = "auto",
    quiet: Quiet = False,
) -> None:
    """Train a model on DATA and write a run directory (Ctrl-C saves a checkpoint).

    Under ``torchrun --nproc_per_node=N -m scdiff train ...`` the N processes train
    together (torch.distributed); only rank 0 writes the run.
    """
    from scdiff import commands
    from scdiff.train import is_main_process

    model = commands.train(
        data, condition=condition, dose=dose, out=out, layer=layer, n_genes=genes, backed=backed,
        overwrite=overwrite, resume=resume, progress=not quiet, epochs=epochs, steps=steps,
        batch_size=batch_size, lr=lr, device=device, precision=precision, seed=seed, monitor=monitor,
        monitor_every=monitor_every, patience=patience, loss_weighting=loss_weighting,
        clip_negative=clip_negative, schedule=schedule, threads=parse_threads(threads), preset=preset,
        space=space, latent_dim=latent_dim, autoencoder_steps=autoencoder_steps, kind=kind,
        **parse_features(condition_features, smiles))
    if not quiet and is_main_process():
        out_console.print(f"wrote run [bold]{out or Path('runs') / data[0].stem}[/] ({model})",
                          highlight=False)


@app.command()
@boundary
def sample(
    run: Run,
    out: Annotated[Path | None, typer.Option(
        help="Output .h5ad or .csv (a table model: .csv or .parquet; default generated.h5ad, "
             "or generated.csv for a table model).")] = None,
    n_cells: Annotated[int | None, typer.Option(help="Cells to generate (default 1000).")] = None,
    condition: Conditions = None,
    dose: Doses = None,
    like: Annotated[Path | None, typer.Option(
        help="Generate as many cells per condition as this file holds (reads only its obs).")] = None,
    from_: Annotated[Path | None, typer.Option(
        "--from", help="Translate these cells to --condition/--dose (counterfactual).")] = None,
    strength: Annotated[float, typer.Option(
        help="With --from: how far the cells are noised, in (0, 1]; lower keeps more identity.")] = 0.6,
    invert: Annotated[bool, typer.Option(
        "--invert", help="With --from: carry each cell to --strength along the ODE under its own "
        "conditions (its own noise) instead of adding fresh noise.")] = False,
    guidance: Annotated[list[str] | None, typer.Option(
        help="Guidance weight (1 = conditional), or KEY=W per attribute; repeatable.")] = None,
    steps: Annotated[int | None, typer.Option(
        help="Sampler steps (default: unipc 10, dpm++ 20, ddim 50, ddpm 1000).")] = None,
    sampler: Annotated[str, typer.Option(
        help="unipc (UniPC: DPM-Solver++ 2M with a free corrector), dpm++ (DPM-Solver++ 2M), "
             "ddim, or ddpm (stochastic, diffusion models only).")] = "unipc",
    seed: Seed = 0,
    device: Device = "auto",
    counts: Annotated[bool, typer.Option(
        "--counts", help="Write integer counts in X (log-normalised values in layers['log1p']).")] = False,
    zeros: Annotated[str, typer.Option(
        help="How small values become exact zeros: auto, cell (values below one read at a drawn "
             "library size become 0 or one read, keeping the mean), gene (below half the gene's "
             "smallest training value) or none.")] = "auto",
    clip: Annotated[bool | None, typer.Option(
        "--clip/--no-clip", help="Keep each step's predicted cell within the genes' training range "
        "(default: when guidance is not 1).")] = None,
    threads: Threads = "auto",
    overwrite: Overwrite = False,
    quiet: Quiet = False,
) -> None:
    """Generate cells from a trained run."""
    from scdiff import commands

    path, n, genes, kind = commands.sample(
        run, out, n_cells=n_cells, like=like, from_=from_, overwrite=overwrite,
        condition=parse_assignments(condition, option="--condition"), dose=parse_doses(dose),
        guidance=parse_guidance(guidance), strength=strength, invert=invert, steps=steps,
        sampler=sampler, seed=seed,
        device=device, counts=counts, zeros=zeros, progress=not quiet,
        clip="auto" if clip is None else clip, threads=parse_threads(threads))
    if not quiet:
        what = ("rows", "columns") if kind == "tabular" else ("cells", "genes")
        out_console.print(f"wrote {n} {what[0]} x {genes} {what[1]} to [bold]{path}[/]", highlight=False)


@app.command()
@boundary
def info(run: Run, as_json: Json = False) -> None:
    """Show what a run holds."""
    from scdiff import commands

    details = commands.info(run)
    if as_json:
        sys.stdout.write(json.dumps(details, indent=2) + "\n")
        return
    table = Table(title=f"scdiff run {run}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    for key, value in details.items():
        if isinstance(value, dict):
            value = "\n".join(f"{k}: {_short(v)}" for k, v in value.items()) or "none"
        table.add_row(key, _short(value))
    out_console.print(table)


def _short(value) -> str:
    if isinstance(value, list) and len(value) > 12:
        return ", ".join(map(str, value[:12])) + f", ... ({len(value)} in all)"
    if isinstance(value, list):
        return ", ".join(map(str, value))
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _show_table_scores(table, title: str, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(table.rename_axis("metric").reset_index().to_json(orient="records", indent=2)
                         + "\n")
        return
    view = Table(title=title)
    for col in ("metric", "generated", "floor"):
        view.add_column(col, justify="left" if col == "metric" else "right")
    for metric, row in table.iterrows():
        view.add_row(str(metric), f"{row.generated:.4g}", f"{row.floor:.4g}")
    out_console.print(view)


@app.command()
@boundary
def evaluate(
    real: Annotated[Path, typer.Argument(
        help="Real cells (.h5ad), log-normalised or counts; or a held-out table (.csv/.parquet).")],
    generated: Annotated[Path, typer.Argument(
        help="Generated cells (.h5ad) in the same genes, or generated rows of the same table.")],
    condition: Conditions = None,
    train: Annotated[Path | None, typer.Option(
        help="The training cells: the floor becomes train vs real, and memorisation is checked "
             "(needed for a table).")] = None,
    out: Annotated[Path | None, typer.Option(help="Write a report (markdown, JSON, PNG) here.")] = None,
    max_cells: Annotated[int, typer.Option(help="Cap of cells per condition (subsampled).")] = 20000,
    seed: Seed = 0,
    overwrite: Overwrite = False,
    as_json: Json = False,
) -> None:
    """Score GENERATED against REAL, beside the real-vs-real floor."""
    from scdiff import commands

    table = commands.evaluate(real, generated, condition=condition, train=train, out=out,
                              overwrite=overwrite, seed=seed, max_cells=max_cells)
    if "generated" in table.columns:  # a plain table's scores (scdiff.evaluate_table)
        _show_table_scores(table, f"{generated.name} vs {real.name}", as_json)
        return
    overall = table[table["group"] == "overall"]
    if as_json:
        sys.stdout.write(overall.to_json(orient="records", indent=2) + "\n")
        return
    view = Table(title=f"{generated.name} vs {real.name}")
    for col in ("metric", "value", "floor", "ratio to floor", "better"):
        view.add_column(col, justify="left" if col in ("metric", "better") else "right")
    for row in overall.itertuples():
        view.add_row(row.metric, f"{row.value:.4g}", f"{row.floor:.4g}", f"{row.ratio:.2f}",
                     str(row.better))
    out_console.print(view)


@app.command()
@boundary
def benchmark(
    train: Annotated[Path, typer.Argument(help="Training cells (.h5ad).")],
    test: Annotated[Path, typer.Argument(help="Held-out real cells (.h5ad).")],
    condition: Conditions = None,
    dose: Doses = None,
    out: Annotated[Path | None, typer.Option(help="Write the table, run and report here.")] = None,
    layer: Layer = None,
    genes: Genes = 2000,
    steps: Annotated[int | None, typer.Option(help="Training steps (default: from data size).")] = None,
    space: Space = "auto",
    seed: Seed = 0,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
    as_json: Json = False,
) -> None:
    """Train scdiff on TRAIN, generate like TEST, and compare with baselines and the floor."""
    from scdiff import commands

    table = commands.benchmark(train, test, condition=condition, dose=dose, out=out, layer=layer,
                               n_genes=genes, train_kwargs={"steps": steps}, seed=seed,
                               model_kwargs={"space": space}, overwrite=overwrite,
                               progress=not quiet)
    if as_json:
        sys.stdout.write(table.to_json(orient="index", indent=2) + "\n")
        return
    view = Table(title=f"benchmark on {test.name} (floor: {train.name} vs {test.name})")
    view.add_column("metric")
    for col in table.columns:
        view.add_column(str(col), justify="right")
    for metric, row in table.iterrows():
        view.add_row(str(metric), *(f"{v:.4g}" if isinstance(v, float) else str(v) for v in row))
    out_console.print(view)


@app.command("dose-response")
@boundary
def dose_response(
    run: Run,
    condition: Conditions = None,
    dose_key: Annotated[str | None, typer.Option(
        "--dose", help="The dose to vary (default: the only one).")] = None,
    doses: Annotated[str | None, typer.Option(
        help="Comma-separated dose grid (default: 0 and 11 log-spaced).")] = None,
    gene: Annotated[list[str] | None, typer.Option(
        help="Gene to report; repeatable (default: top --n-genes).")] = None,
    n_genes: Annotated[int, typer.Option(help="Without --gene: the genes that change most.")] = 10,
    n_cells: Annotated[int, typer.Option(help="Cells generated per dose.")] = 200,
    out: Annotated[Path, typer.Option(
        help="Table (.csv); a plot is written beside it (.png).")] = Path("dose_response.csv"),
    seed: Seed = 0,
    device: Device = "auto",
    overwrite: Overwrite = False,
    quiet: Quiet = False,
) -> None:
    """Generated mean expression of genes across a dose grid, as a table and a plot."""
    from scdiff import commands

    grid = [parse_number(d.strip(), what="--doses") for d in doses.split(",")] if doses else None
    table, figure = commands.dose_response(
        run, out, condition=parse_assignments(condition, option="--condition"), overwrite=overwrite,
        dose_key=dose_key, doses=grid, genes=list(gene) if gene else n_genes, n_cells=n_cells,
        seed=seed, device=device)
    if not quiet:
        out_console.print(f"wrote {out} ({len(table)} doses x {table.shape[1]} genes) and {figure}",
                          highlight=False)


def main() -> None:
    """Entry point of the ``scdiff`` command and ``python -m scdiff``."""
    app()
