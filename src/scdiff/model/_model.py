"""ConditionalDiffusion: the user-facing model. It composes the parts and holds no work of
its own: set-up (:mod:`._setup`), training (:mod:`._fit`), generation (:mod:`._generate`,
:mod:`._stream`) and the run directory (:mod:`._run`) take the model's parts."""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

import anndata as ad
import pandas as pd
import torch

from scdiff._errors import RunError
from scdiff._threads import apply_threads
from scdiff.model import _describe, _fit, _generate, _run, _stream, _train
from scdiff.model._setup import ModelParts, setup
from scdiff.train import TrainConfig, copy_with_state


def _part(name: str, doc: str) -> property:
    """A read-only view of one of the model's parts."""
    return property(lambda self: getattr(self.parts, name), doc=doc)


class ConditionalDiffusion:
    """A conditional diffusion model of single-cell expression, or of a plain table.

    Parameters
    ----------
    adata
        Training data: raw counts or log-normalised expression in ``X`` or ``layer``; or a
        pandas DataFrame, a table of any columns (numbers of any sign and scale, integers,
        categories, booleans, missing values), whose samples come back as DataFrames with
        the same columns and dtypes (docs/tabular.md).
    condition
        Categorical ``.obs`` column(s) to condition on.
    dose
        Continuous ``.obs`` column(s) to condition on.
    layer, n_genes
        Read expression from ``adata.layers[layer]``; keep the ``n_genes`` most variable genes.
    width, depth, dropout
        Size of the residual MLP, and dropout inside its blocks.
    schedule, prediction, num_timesteps
        A diffusion (``"cosine"``/``"linear"``; ``prediction`` ``"v"`` (default), ``"epsilon"``,
        ``"x0"``) or a rectified flow (``"flow"``, the velocity predicted); T timesteps.
    dose_encoder
        ``"sigmoid"`` (CPA-like, a Hill-type response per drug), ``"sinusoidal"`` or ``"mlp"``
        (:class:`scdiff.nn.DoseEncoder`).
    dose_by
        The categorical attribute each dose belongs to (the drug), for a drug-by-dose
        interaction: one key for all doses, a mapping dose key -> key, ``None`` for
        none, or ``"auto"``: the condition that has a category whose cells all have
        dose 0 (the control), when exactly one has.
    additive
        Make main effects add up in combinations never measured: in a perturbation design (a
        dose paired with its drug) a mean model fitted first (:class:`scdiff.nn.MeanModel`),
        the diffusion modelling each cell's departure from it; otherwise an additive path
        to the output (:class:`scdiff.nn.ConditionalMLP`). ``"auto"`` (the default): on with
        two or more attributes (condition keys and doses together); with one there is
        nothing to combine. docs/perturbation.md has the measurements behind these defaults.
    clip_negative
        Set negative expression values to 0 (the small negatives smoothing or imputation
        leaves); without it they are refused, with advice.
    space
        Where the diffusion runs: ``"gene"`` (the ``n_genes`` modelled genes), ``"pca"``
        (their ``latent_dim`` principal components, each gene's residual spread added back
        when decoding), ``"latent"`` (the latent of an autoencoder trained first, whose
        negative-binomial decoder writes every gene of the data as counts; needs library
        sizes: counts, or an ``n_counts`` column) or ``"auto"`` (the default): ``latent``
        where library sizes are known and one attribute is modelled (one condition, no
        dose), else ``gene`` (docs/fidelity.md).
    latent_dim
        Dimensions of the ``pca`` space (default 32; for fewer genes, one less than their
        number) or the ``latent`` space (default 64).
    autoencoder
        Settings of the latent space's autoencoder: ``width``, ``depth``, ``kl_weight`` and
        ``dropout`` (left out: by the number of cells, ``_space.autoencoder_dropout``).
    kind
        ``"tabular"`` models the data as a plain table (:class:`scdiff.data.TableCodec`),
        ``"expression"`` as expression; ``"auto"`` (the default): an AnnData is
        expression, and so is a DataFrame of at least 100 feature columns, all numeric and
        complete; any other DataFrame is a table.
    condition_features
        ``{"drug": table}``: a DataFrame or .csv / .parquet file, one row per category (its
        name first), numeric columns. The attribute is embedded from its features (plus a
        residual per measured category), so a category the table describes but no cell has
        can be sampled. Values joining categories by ``+`` (``drug="drugA+drugB"``,
        ``dose="10+100"``) are sets of perturbations in one cell (docs/perturbation.md).
    smiles
        ``{"drug": table}`` of SMILES, used as Morgan fingerprint features (``scdiff[chem]``).

    Examples
    --------
    >>> import scdiff, anndata as ad
    >>> adata = ad.read_h5ad("data_examples/pbmc_train.h5ad")  # doctest: +SKIP
    >>> model = scdiff.ConditionalDiffusion(adata, condition="cell_type")  # doctest: +SKIP
    >>> model.train(steps=200)  # doctest: +SKIP
    >>> fake = model.sample(n_cells=100, condition={"cell_type": "CD19+ B"})  # doctest: +SKIP
    """

    def __init__(
        self,
        adata: ad.AnnData,
        condition: str | Sequence[str] | None = None,
        dose: str | Sequence[str] | None = None,
        *,
        layer: str | None = None,
        n_genes: int = 2000,
        width: int = 256,
        depth: int = 3,
        dropout: float = 0.1,
        schedule: str = "cosine",
        prediction: str | None = None,
        num_timesteps: int = 1000,
        dose_encoder: str = "sigmoid",
        dose_by: str | Mapping[str, str] | None = "auto",
        additive: bool | str = "auto",
        clip_negative: bool = False,
        space: str = "auto",
        latent_dim: int | None = None,
        autoencoder: Mapping | None = None,
        kind: str = "auto",
        condition_features: Mapping | None = None,
        smiles: Mapping | None = None,
    ) -> None:
        parts, data = setup(
            adata, condition, dose, layer=layer, n_genes=n_genes, dose_encoder=dose_encoder,
            dose_by=dose_by, additive=additive, clip_negative=clip_negative, space=space,
            latent_dim=latent_dim, autoencoder=autoencoder, kind=kind,
            condition_features=condition_features, smiles=smiles,
            network={"width": width, "depth": depth, "dropout": dropout},
            schedule={"num_timesteps": num_timesteps, "schedule": schedule,
                      "prediction": prediction or ("flow" if schedule == "flow" else "v")},
        )
        self._init(parts, data=data)

    def _init(self, parts: ModelParts, *, data=None, run: _run.Run | None = None,
              run_path: str | None = None) -> None:
        """The one place a model's attributes are set: for a new model and a loaded one alike."""
        self.parts = parts
        self.network = parts.build_network()
        self.ema_state: dict[str, torch.Tensor] | None = None
        self.train_config: TrainConfig | None = None
        self.log: list[dict] = []
        self.space_train: TrainConfig | None = None  # the space's autoencoder, when it has one
        self.space_log: list[dict] = []
        self.seed: int | None = None
        self.run_id = ""
        self._data = data
        self._run_path = run_path
        if run is not None:  # its weights were checked against the config when read
            self.network.load_state_dict(run.model_state)
            self.ema_state, self.train_config = run.ema_state, run.train_config
            self.log, self.seed, self.run_id = run.log, run.seed, run.run_id
            self.space_train, self.space_log = run.space_train, run.space_log

    # -- description --------------------------------------------------------------------------
    preprocessor = _part("preprocessor", "Input scale, modelled genes and their scaling.")
    encoder = _part("encoder", "Condition keys, categories and doses.")
    schedule = _part("schedule", "The noise schedule (or flow) and what the network predicts.")
    library = _part("library", "Quantiles of the training cells' library sizes, per condition.")
    network_config = _part("network_config", "The network's keyword arguments.")
    genes = _part("genes", "The genes of generated cells (every gene of the data in a latent space).")
    space = _part("space", "The space the diffusion runs in (:mod:`scdiff.space`).")
    kind = _part("kind", '``"tabular"`` (a plain table: samples are DataFrames) or ``"expression"``.')

    @property
    def is_trained(self) -> bool:
        return self.ema_state is not None

    def __repr__(self) -> str:
        return _describe.one_line(self)

    def info(self) -> dict:
        """What the run holds, as plain data (the CLI's ``scdiff info``)."""
        return _describe.info(self)

    # -- training -----------------------------------------------------------------------------
    def train(
        self,
        *,
        epochs: int | None = None,
        steps: int | None = None,
        batch_size: int | None = None,
        lr: float | None = None,
        device: str = "auto",
        precision: str = "auto",
        seed: int = 0,
        p_uncond: float = 0.1,
        loss_weighting: str = "snr_cap",
        snr_gamma: float = 5.0,
        progress: bool = True,
        checkpoint_dir: str | os.PathLike | None = None,
        checkpoint_every: int = 500,
        resume: bool = False,
        monitor: float | ad.AnnData | None = None,
        monitor_every: int = 250,
        patience: int | None = None,
        threads: int | str = "auto",
        preset: str = "default",
        autoencoder_steps: int | None = None,
    ) -> ConditionalDiffusion:
        """Fit the network to the training data given at construction.

        Give ``epochs`` (passes over the data) or ``steps`` (optimizer updates); by
        default the length follows the data's size (:func:`scdiff.model.auto_steps`). In a
        ``latent`` space the autoencoder trains first, ``autoencoder_steps`` (default
        :func:`scdiff.model._fit.autoencoder_steps`, or ``steps`` where ``steps`` or
        ``epochs`` are given), with the same batch, learning rate, precision and seed.
        ``lr`` defaults to 1e-3 at batch 256, scaled by the square root of the batch size
        (:func:`scdiff.train.scaled_lr`). Under ``torchrun`` the processes train together,
        each on its shard of the data, ``batch_size`` cells per step across all of them.
        With ``checkpoint_dir``, a checkpoint is written there every ``checkpoint_every``
        steps and when Ctrl-C or SIGTERM arrives (then :class:`TrainingInterrupted`
        is raised); ``resume=True`` continues from that checkpoint with its settings,
        and on the CPU ends with the same weights, bit for bit, as an uninterrupted run.

        ``monitor`` (a fraction of the training cells to hold out, or an AnnData of
        held-out cells) adds ``mmd`` and ``mmd_floor`` to the log every ``monitor_every``
        steps: the MMD of a small generated sample to held-out cells, and that of two
        halves of the held-out cells. With ``patience``, training ends early once ``mmd``
        has not improved for that many evaluations.

        ``loss_weighting`` weights the timesteps (:meth:`scdiff.diffusion.NoiseSchedule.loss_weight`):
        ``"snr_cap"`` (default), ``"min_snr"`` or ``"none"`` (docs/fidelity.md compares them).
        ``threads``: CPU threads for torch, ``"auto"`` (default) the CPUs this process may use
        less those other processes keep busy; set again at every call.

        ``preset``: ``"default"`` trains at ``batch_size`` 256; ``"atlas"`` (millions of
        cells) takes, unless ``batch_size`` is given, the largest batch half the GPU's free
        memory holds (4096 to 65536; 4096 on the CPU; at most 1/32 of the cells) and on a
        GPU compiles the network with CUDA graphs (docs/performance.md).
        """
        if self._data is None:
            raise RunError("this model was loaded from a run and holds no training data; "
                           "create a new ConditionalDiffusion(adata, ...) to train.")
        _fit.check_options(epochs=epochs, steps=steps, batch_size=batch_size, lr=lr, device=device,
                           precision=precision, seed=seed, p_uncond=p_uncond,
                           loss_weighting=loss_weighting, snr_gamma=snr_gamma,
                           checkpoint_every=checkpoint_every, monitor=monitor,
                           monitor_every=monitor_every, patience=patience, threads=threads,
                           preset=preset, autoencoder_steps=autoencoder_steps)
        apply_threads(threads)
        options = dict(preset=preset, epochs=epochs, steps=steps, batch_size=batch_size, lr=lr,
                       precision=precision, seed=seed, p_uncond=p_uncond, loss_weighting=loss_weighting,
                       snr_gamma=snr_gamma, checkpoint_every=checkpoint_every if checkpoint_dir else 0)
        done = _train.train(self.parts, self._data, options=options, device=device, progress=progress,
                            checkpoint_dir=checkpoint_dir, resume=resume, monitor=monitor,
                            monitor_every=monitor_every, patience=patience,
                            autoencoder_steps=autoencoder_steps)
        self.network = done.result.model.to("cpu")
        self.ema_state = {k: v.to("cpu") for k, v in done.result.ema_state.items()}
        self.train_config, self.log, self.seed = done.config, done.result.log, int(done.config.seed)
        self.space_train, self.space_log = done.space_train, done.space_log
        self.run_id = uuid.uuid4().hex[:12]
        return self

    # -- sampling -----------------------------------------------------------------------------
    def sample(
        self,
        n_cells: int | None = None,
        *,
        condition: Mapping[str, str] | None = None,
        dose: Mapping[str, float] | None = None,
        like: ad.AnnData | pd.DataFrame | None = None,
        from_: ad.AnnData | None = None,
        strength: float = 0.6,
        guidance: float | Mapping[str, float] = 1.0,
        steps: int | None = None,
        sampler: str = "unipc",
        seed: int = 0,
        device: str = "auto",
        precision: str = "fp32",
        batch_size: int | None = None,
        progress: bool = False,
        counts: bool = False,
        zeros: str = "auto",
        clip: bool | str = "auto",
        threads: int | str = "auto",
        invert: bool = False,
        sparse: bool = False,
    ) -> ad.AnnData:
        """Generate cells as an AnnData in the training gene space (log-normalised); a table
        model's rows as a DataFrame of the training table's columns, dtypes and categories.

        With ``like``, as many cells of each condition (and dose) as ``like`` holds;
        only its ``.obs`` is read. Otherwise ``n_cells`` cells (default 1000) with the
        ``condition``/``dose`` values given, the rest in training proportions.
        ``guidance`` is one weight (1 = plain conditional) or one per attribute; a dose
        paired with a drug is guided together with it, with the drug's weight. For a
        drug-cell combination never measured, a weight per attribute such as
        ``{cell_type: 1, drug: 1.5}`` composes them (docs/perturbation.md).

        With ``from_``, translate those real cells instead (counterfactual, SDEdit):
        each is noised to ``strength`` (0 < strength <= 1) of the diffusion and
        denoised under its own conditions with ``condition``/``dose`` overriding them;
        low strength keeps more of the cell's identity, 1 forgets it. With ``invert``, each
        cell is instead carried to that strength along the deterministic ODE under its
        own conditions (DDIM inversion; on a flow model, integrating back from the data
        side), so it starts from its own noise rather than fresh noise.

        The output: ``X`` holds log1p of counts per 10k in the modelled genes; where the
        model knows library sizes (trained on counts, or with an ``n_counts`` column),
        ``layers["counts"]`` holds integer counts (Poisson around the generated expression
        at library sizes drawn from the training cells of the same condition). With
        ``counts``, ``X`` holds those counts and ``layers["log1p"]`` the log-normalised
        values; with ``sparse``, as CSR matrices. ``uns["scdiff"]`` says which (``space``,
        ``layers``) and how the cells were made. Condition columns come back with their
        training dtype and categories; cell names are ``gen-<digest>-<i>``, the digest
        differing between runs, options and requests, so samples concatenate without clashes.

        ``sampler``/``steps``: ``"unipc"`` (default, 10 steps), ``"dpm++"`` (20), ``"ddim"`` (50)
        or ``"ddpm"`` (stochastic, every timestep); docs/performance.md scores them by steps.
        ``batch_size``: cells per batch, by default 1024 on the CPU and 8192 on a GPU.

        ``guidance`` above 1 extrapolates past the conditional model; ``clip`` keeps every
        step's predicted clean cell within each gene's training range, so that no weight
        can produce values real cells cannot have. ``"auto"`` (default) clips whenever
        the guidance is not the plain conditional model (docs/fidelity.md measures it).

        ``zeros`` says how small generated values become exact zeros: ``"gene"`` (below half
        the gene's smallest non-zero training value), ``"cell"`` (also below one read at a
        library size drawn per cell, rounded to 0 or one read keeping the mean; needs
        library sizes), ``"auto"`` (default: ``"cell"`` where it can) or ``"none"``
        (docs/fidelity.md measures them).
        """
        if not self.is_trained:
            raise RunError("the model is not trained yet; call model.train() first.")
        how = _generate.Sampling(guidance=guidance, steps=steps, sampler=sampler, seed=seed,
                                 device=device, precision=precision, batch_size=batch_size,
                                 progress=progress, counts=counts, zeros=zeros, clip=clip,
                                 threads=threads, invert=invert).resolve(self.parts)
        n_threads = apply_threads(threads)
        return _generate.sample(
            self.parts, copy_with_state(self.network, self.ema_state), how, run_id=self.run_id,
            provenance={**_describe.provenance(self), "threads": n_threads}, n_cells=n_cells,
            condition=condition, dose=dose, like=like, from_=from_, strength=strength,
            sparse=bool(sparse))

    def sample_to_h5ad(self, path: str | os.PathLike, n_cells: int | None = None, *,
                       like: ad.AnnData | pd.DataFrame | None = None,
                       chunk_size: int = _stream.STREAM_CHUNK, seed: int = 0, overwrite: bool = False,
                       progress: bool = False, **options) -> Path:
        """Generate cells straight into an ``.h5ad`` file, ``chunk_size`` cells at a time.

        For millions of cells: memory stays bounded by one chunk. Each chunk comes from
        :meth:`sample` (``options`` are passed on: ``condition``, ``dose``, ``guidance``,
        ``steps``, ``sampler``, ``device``, ...); chunk 0 uses ``seed`` and chunk ``i``
        a seed drawn from ``(seed, i)``, so up to ``chunk_size`` cells the file holds
        exactly what ``sample(seed=seed)`` returns. ``X`` is stored as CSR.

        Examples
        --------
        >>> model.sample_to_h5ad("fake.h5ad", 2_000_000, guidance=2.0)  # doctest: +SKIP
        """
        _stream.check_sample_suffix(path, tabular=self.kind == "tabular")
        return _stream.sample_to_h5ad(self.sample, path, n_cells, like=like, chunk_size=chunk_size,
                                      seed=seed, overwrite=overwrite, progress=progress, **options)

    def sample_to_file(self, path: str | os.PathLike, n_cells: int | None = None, *,
                       like: ad.AnnData | pd.DataFrame | None = None, from_: ad.AnnData | None = None,
                       chunk_size: int = _stream.STREAM_CHUNK, seed: int = 0, overwrite: bool = False,
                       progress: bool = False, **options) -> Path:
        """Generate cells into ``path`` (``.h5ad`` or ``.csv``; a table model's rows into
        ``.csv`` or ``.parquet``), streaming when they are many.

        An ``.h5ad`` of more than ``chunk_size`` cells is written chunk by chunk
        (:meth:`sample_to_h5ad`), so memory stays bounded; otherwise this is
        :meth:`sample` followed by an atomic write. ``options`` go to :meth:`sample`.

        Examples
        --------
        >>> model.sample_to_file("fake.h5ad", 500_000, condition={"cell_type": "B"})  # doctest: +SKIP
        """
        _stream.check_sample_suffix(path, tabular=self.kind == "tabular")
        return _stream.sample_to_file(self.sample, path, n_cells, like=like, from_=from_, seed=seed,
                                      overwrite=overwrite, progress=progress, chunk_size=chunk_size,
                                      **options)[0]

    # -- persistence --------------------------------------------------------------------------
    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the run directory (weights, config, log, loss plot)."""
        if not self.is_trained:
            raise RunError("the model is not trained yet; call model.train() before save().")
        run = _run.Run(self.parts, self.network.state_dict(), self.ema_state, self.train_config,
                       self.seed, self.log, self.run_id, self.space_train, self.space_log)
        path = _run.save(path, run, overwrite=overwrite)
        self._run_path = str(path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> ConditionalDiffusion:
        """Rebuild a trained model from a run directory; needs no training data."""
        run = _run.load(path)
        model = cls.__new__(cls)
        model._init(run.parts, run=run, run_path=str(path))
        return model
