"""ConditionalDiffusion: the user-facing model that composes data, network, schedule,
trainer and sampler around an AnnData."""

from __future__ import annotations

import csv
import io
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import torch

from scdiff import _run
from scdiff._errors import InputError, RunError, TrainingInterrupted
from scdiff._interrupt import graceful_stop
from scdiff._progress import progress_bar
from scdiff.data import ConditionEncoder, Preprocessor
from scdiff.data._io import atomic_write, check_anndata
from scdiff.data._library import (
    counts_from_log,
    draw_library_sizes,
    fit_library_sizes,
    round_below_one_read,
)
from scdiff.data._preprocess import expression
from scdiff.diffusion import Guidance, NoiseSchedule, sample_loop
from scdiff.diffusion._schedule import check_loss_weighting
from scdiff.nn import ConditionalMLP
from scdiff.perturb._pairs import check_additive, check_dose_encoder, dose_pairs
from scdiff.train import (
    CellTensors,
    TrainConfig,
    Trainer,
    copy_with_state,
    resolve_device,
    resolve_precision,
)
from scdiff.train._distributed import distributed, is_main_process
from scdiff.train._trainer import scaled_lr

MAX_CELLS = 50_000_000
#: How generated values become exact zeros (see ConditionalDiffusion.sample).
ZEROS = ("auto", "cell", "gene", "none")


def auto_steps(n_cells: int, batch_size: int) -> int:
    """Default training length: ~2 minutes on a 2-core CPU for small data, more epochs on larger."""
    epochs_equiv = 600 * n_cells / batch_size
    return int(np.clip(epochs_equiv, 2000, 20000))


#: Appended to the unseen-combination warning when one guidance number drives every attribute.
_COMPOSE = (" One guidance weight drives them all in one pass; a weight per attribute composes them "
            "and scored higher on a held-out combination (e.g. guidance={'cell_type': 1, 'drug': 1.5}; "
            "CLI: --guidance drug=1.5; docs/perturbation.md).")


class ConditionalDiffusion:
    """A conditional diffusion model of single-cell expression.

    Parameters
    ----------
    adata
        Training data: raw counts or log-normalised expression in ``X`` or ``layer``.
    condition
        Categorical ``.obs`` column(s) to condition on.
    dose
        Continuous ``.obs`` column(s) to condition on.
    layer
        Read expression from ``adata.layers[layer]`` instead of ``X``.
    n_genes
        Keep the ``n_genes`` most variable genes when the data has more.
    width, depth, dropout
        Size of the residual MLP, and dropout inside its blocks (0.1 lowered MMD and
        energy distance on the four data sets of docs/fidelity.md, copied training cells
        less, and kept the perturbation scores of docs/perturbation.md).
    schedule, prediction, num_timesteps
        The diffusion: ``"cosine"``/``"linear"``; ``"epsilon"``/``"v"``/``"x0"``; T.
    dose_encoder
        How doses are encoded: ``"sigmoid"`` (CPA-like, per-drug Hill-type response),
        ``"sinusoidal"`` or ``"mlp"``; see :class:`scdiff.nn.DoseEncoder`.
    dose_by
        The categorical attribute each dose belongs to (the drug), for a drug-by-dose
        interaction: one key for all doses, a mapping dose key -> key, ``None`` for
        none, or ``"auto"``: the condition that has a category whose cells all have
        dose 0 (the control), when exactly one has.
    additive
        Give the attributes an additive path to the output (CPA-like; see
        :class:`scdiff.nn.ConditionalMLP`), so that main effects add up in combinations
        never measured. ``"auto"`` (the default) turns it on when the model has two or
        more attributes (condition keys and doses together): there it raised the held-out
        combination's score from 0.677 to 0.709 (four seeds; docs/perturbation.md). With
        one attribute there is nothing to combine, and on the wide panel it cost a
        fidelity target.

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
        prediction: str = "v",
        num_timesteps: int = 1000,
        dose_encoder: str = "sigmoid",
        dose_by: str | Mapping[str, str] | None = "auto",
        additive: bool | str = "auto",
    ) -> None:
        if not isinstance(adata, ad.AnnData):
            raise InputError(f"adata needs to be an AnnData, got {type(adata).__name__}.")
        check_anndata(adata)
        if n_genes < 1:
            raise InputError(f"n_genes = {n_genes} needs to be at least 1.")
        backed = adata.isbacked  # opened with backed="r": expression is read in row chunks
        if backed:
            from scdiff.data._backed import fit_backed

            self.preprocessor, row_sums = fit_backed(adata, layer=layer, n_genes=n_genes)
        else:
            self.preprocessor, z = Preprocessor.fit_transform(adata, layer=layer, n_genes=n_genes)
        self.encoder = ConditionEncoder.fit(adata.obs, condition, dose)
        self.library = fit_library_sizes(row_sums if backed else expression(adata, layer), adata.obs,
                                         input_scale=self.preprocessor.input_scale,
                                         keys=self.encoder.keys)
        self.schedule = NoiseSchedule(num_timesteps, schedule, prediction)  # type: ignore[arg-type]
        self.network_config = {
            "n_genes": len(self.preprocessor.genes), "n_categories": self.encoder.n_categories,
            "n_doses": len(self.encoder.dose_keys), "width": int(width), "depth": int(depth),
            "dropout": float(dropout),
            "dose_encoder": check_dose_encoder(dose_encoder),
            "dose_pairs": dose_pairs(adata.obs, self.encoder.keys, self.encoder.dose_keys, dose_by),
            "additive": check_additive(additive, len(self.encoder.keys) + len(self.encoder.dose_keys)),
        }
        self.network = ConditionalMLP(**self.network_config)
        self.ema_state: dict[str, torch.Tensor] | None = None
        self.train_config: TrainConfig | None = None
        self.log: list[dict] = []
        self.seed: int | None = None
        codes, doses = self.encoder.encode(adata.obs)
        if backed:
            from scdiff.data._backed import BackedCells, RowReader

            self._data = BackedCells(RowReader(adata, layer), self.preprocessor, codes, doses)
        else:
            self._data: CellTensors | None = CellTensors(
                torch.from_numpy(z), torch.from_numpy(codes), torch.from_numpy(doses)
            )
        self._run_path: str | None = None

    # -- description --------------------------------------------------------------------------
    @property
    def genes(self) -> list[str]:
        return list(self.preprocessor.genes)

    @property
    def is_trained(self) -> bool:
        return self.ema_state is not None

    def __repr__(self) -> str:
        conds = ", ".join(
            f"{k} ({len(c)})" for k, c in zip(self.encoder.keys, self.encoder.categories, strict=True)
        )
        doses = ", ".join(self.encoder.dose_keys)
        state = f"trained {self.train_config.steps} steps" if self.train_config else "untrained"
        return (
            f"ConditionalDiffusion({len(self.genes)} genes; conditions: {conds or 'none'}; "
            f"doses: {doses or 'none'}; {state})"
        )

    # -- training -----------------------------------------------------------------------------
    def train(
        self,
        *,
        epochs: int | None = None,
        steps: int | None = None,
        batch_size: int = 256,
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
    ) -> ConditionalDiffusion:
        """Fit the network to the training data given at construction.

        Give ``epochs`` (passes over the data) or ``steps`` (optimizer updates); by
        default the length follows the data's size (:func:`auto_steps`). ``lr`` defaults
        to 1e-3 at batch 256, scaled by the square root of the batch size
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

        ``loss_weighting`` weights the timesteps in the loss
        (:meth:`scdiff.diffusion.NoiseSchedule.loss_weight`): ``"snr_cap"`` (default) caps
        the weight of the low-noise steps at its value at SNR ``snr_gamma``; on the four
        data sets of docs/fidelity.md it lowered MMD and energy distance on pbmc and the
        simulator and met the kNN AUC target on pbmc. ``"min_snr"`` (Min-SNR-gamma) also
        weights the high-noise steps down: better on the wide immune panel (MMD 0.27 ->
        0.25), worse on pbmc's marker genes. ``"none"``: the plain MSE of the target.
        """
        if self._data is None:
            raise RunError("this model was loaded from a run and holds no training data; "
                           "create a new ConditionalDiffusion(adata, ...) to train.")
        resume_from = None
        if resume:
            if checkpoint_dir is None:
                raise InputError("resume needs the run directory that holds the checkpoint.")
            meta, tensors = _run.read_checkpoint(checkpoint_dir)
            if meta.get("fingerprint") != self._fingerprint():
                raise RunError(f"the checkpoint in {checkpoint_dir} was trained on other data or "
                               "options (genes, conditions or network differ); resume with the "
                               "same data and options, or start over with --overwrite.")
            cfg = TrainConfig.from_config(meta["train"])
            log = _run.log_rows(tensors.pop("log"))
            resume_from = (int(meta["step"]), tensors, log)
        else:
            cfg = self._train_config(epochs=epochs, steps=steps, batch_size=batch_size, lr=lr,
                                     precision=precision, seed=seed, p_uncond=p_uncond,
                                     checkpoint_every=checkpoint_every if checkpoint_dir else 0,
                                     weighting=check_loss_weighting(loss_weighting, snr_gamma))
        dev = resolve_device(device)
        torch.manual_seed(cfg.seed)
        self.network = ConditionalMLP(**self.network_config)
        data, watcher = self._monitor_split(monitor, patience, cfg.seed)
        start = time.perf_counter()
        first = resume_from[0] if resume_from else 0
        # under torchrun: one process group for the fit; rank 0 alone shows progress and saves
        with (distributed(dev) as dev,
              progress_bar("training", cfg.steps, enabled=progress and is_main_process(),
                           show_loss=True) as bar,
              graceful_stop() as stop):
            trainer = Trainer(cfg, self.schedule, dev)
            bar.update(first)

            def on_log(step: int, row: dict) -> None:
                rate = (step - first) / max(time.perf_counter() - start, 1e-9)
                shown = f"{row['loss']:.4f}" + (f" mmd {row['mmd']:.3f}/{row['mmd_floor']:.3f}"
                                                 if "mmd" in row else "")
                bar.update(step, loss=shown, rate=f"{rate:.1f} steps/s")

            def on_checkpoint(step: int, tensors: dict[str, torch.Tensor]) -> None:
                meta = {"step": step, "train": cfg.to_config(), "fingerprint": self._fingerprint()}
                _run.write_checkpoint(checkpoint_dir, tensors, meta)

            result = trainer.fit(self.network, data, on_log=on_log,
                                 on_checkpoint=on_checkpoint if checkpoint_dir else None,
                                 should_stop=stop, resume=resume_from, on_eval=watcher,
                                 eval_every=max(cfg.log_every,
                                                monitor_every // cfg.log_every * cfg.log_every))
        if result.stopped:
            where = (f"checkpoint saved in {checkpoint_dir}; continue with --resume" if checkpoint_dir
                     else "no checkpoint directory was given, so nothing was saved")
            raise TrainingInterrupted(f"training stopped by {stop.signal_name} at step "
                                      f"{result.step} of {cfg.steps}; {where}.")
        self.network = result.model.to("cpu")
        self.ema_state = {k: v.to("cpu") for k, v in result.ema_state.items()}
        self.train_config = cfg
        self.log = result.log
        self.seed = int(cfg.seed)
        return self

    def _monitor_split(self, monitor, patience: int | None, seed: int):
        """The cells to train on and the :class:`SampleMonitor` (None without ``monitor``)."""
        from scdiff._monitor import SampleMonitor

        data = self._data
        if monitor is None:
            return data, None
        if isinstance(monitor, ad.AnnData):
            x = self.preprocessor.transform(self.preprocessor.log_expression(monitor))
            codes, doses = self.encoder.encode(monitor.obs, where="the monitor cells")
        else:
            if not 0 < float(monitor) < 0.5:
                raise InputError(f"monitor = {monitor} needs to be a fraction between 0 and 0.5 "
                                 "(of the training cells to hold out) or an AnnData.")
            n = len(data)
            held = np.random.default_rng(seed).permutation(n)[: max(20, int(n * float(monitor)))]
            keep = np.setdiff1d(np.arange(n), held)
            x, codes, doses = (t[held].numpy() for t in (data.x, data.cats, data.doses))
            data = CellTensors(data.x[keep], data.cats[keep], data.doses[keep])
        if len(x) < 20:
            raise InputError("monitoring needs at least 20 held-out cells; give a larger fraction.")
        watcher = SampleMonitor(self.network_config, self.schedule, x, codes, doses,
                                self.encoder.attributes, patience=patience, seed=seed)
        return data, watcher

    def _train_config(self, *, epochs: int | None, steps: int | None, batch_size: int,
                      lr: float | None, precision: str, seed: int, p_uncond: float,
                      checkpoint_every: int, weighting: tuple[str, float]) -> TrainConfig:
        if lr is None:  # larger batches, larger steps: square-root scaling (Adam)
            lr = scaled_lr(batch_size) if batch_size >= 1 else 1e-3
        if batch_size < 1 or lr <= 0:
            raise InputError("batch_size needs to be >= 1 and lr > 0.")
        n = len(self._data)
        per_epoch = max(1, n // min(batch_size, n))
        if steps is None:
            steps = epochs * per_epoch if epochs is not None else auto_steps(n, batch_size)
        if steps < 1:
            raise InputError(f"training needs at least one step (got steps={steps}, epochs={epochs}).")
        # checkpoints on log boundaries, so a resumed log continues the same rows
        every = max(20, (checkpoint_every // 20) * 20) if checkpoint_every else 0
        return TrainConfig(steps=int(steps), batch_size=int(batch_size), lr=float(lr),
                           precision=precision, seed=int(seed), p_uncond=float(p_uncond),
                           loss_weighting=weighting[0], snr_gamma=weighting[1],
                           warmup_steps=min(100, max(1, steps // 10)), log_every=20,
                           checkpoint_every=every)

    def _fingerprint(self) -> str:
        """Hash of what the weights' meaning depends on: genes, scaling, conditions, network."""
        import hashlib
        import json

        blob = json.dumps([self.network_config, self.preprocessor.to_config(),
                           self.encoder.keys, self.encoder.categories, self.encoder.dose_keys,
                           self.schedule.to_config()], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

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
        sampler: str = "ddim",
        seed: int = 0,
        device: str = "auto",
        precision: str = "fp32",
        batch_size: int = 8192,
        progress: bool = False,
        counts: bool = False,
        zeros: str = "auto",
    ) -> ad.AnnData:
        """Generate cells as an AnnData in the training gene space (log-normalised).

        With ``like``, as many cells of each condition (and dose) as ``like`` holds;
        only its ``.obs`` is read. Otherwise ``n_cells`` cells (default 1000) with the
        ``condition``/``dose`` values given, the rest in training proportions.
        ``guidance`` is one weight (1 = plain conditional) or one per attribute; a dose
        paired with a drug is guided together with it, with the drug's weight. For a
        drug-cell combination never measured, ``{cell_type: 1, drug: 1.5}`` scored best
        on the simulator (docs/perturbation.md).

        With ``from_``, translate those real cells instead (counterfactual, SDEdit):
        each is noised to ``strength`` (0 < strength <= 1) of the diffusion and
        denoised under its own conditions with ``condition``/``dose`` overriding them;
        low strength keeps more of the cell's identity, 1 forgets it.

        With ``counts``, ``X`` holds integer counts (Poisson around the generated
        expression at library sizes drawn from the training cells of the same
        condition) and ``layers["log1p"]`` the log-normalised values.

        ``zeros`` says how small generated values become exact zeros (real expression is
        mostly zeros; the diffusion smears them into small positive values):
        ``"gene"``, values below half of the gene's smallest non-zero training value
        become 0; ``"cell"``, then also every value below one read at a library size
        drawn for each cell from the training cells of its condition becomes 0 or one
        read, with probability keeping its mean (real data hold nothing in between);
        it needs library sizes (counts or an ``n_counts`` column at training);
        ``"auto"`` (default), ``"cell"`` where it can, else ``"gene"``; ``"none"``, only
        negative values. ``"cell"`` brought each gene's fraction of zeros close to the
        held-out cells' on pbmc, the simulator and a wide panel (docs/fidelity.md).
        """
        if not self.is_trained:
            raise RunError("the model is not trained yet; call model.train() first.")
        if sampler not in ("ddim", "ddpm"):
            raise InputError(f"sampler {sampler!r} needs to be 'ddim' or 'ddpm'.")
        if zeros not in ZEROS:
            raise InputError(f"zeros = {zeros!r} needs to be one of {', '.join(ZEROS)}.")
        if zeros == "cell" and not self.library:
            raise InputError("zeros='cell' needs the training cells' library sizes, which this model "
                             "lacks (trained on log data without n_counts); use zeros='gene'.")
        if zeros == "auto":
            zeros = "cell" if self.library else "gene"
        if steps is None:
            steps = 50 if sampler == "ddim" else self.schedule.num_timesteps
        rng = np.random.default_rng(seed)
        x_start = t_start = None
        if from_ is not None:
            if like is not None or n_cells is not None:
                raise InputError("give either from_= (cells to translate) or like=/n_cells, not both.")
            from scdiff.perturb._translate import translation_inputs

            frame, x_start, t_start = translation_inputs(self, from_, condition, dose, strength, rng)
            where = "the cells to translate"
        elif like is not None:
            if n_cells is not None or condition or dose:
                raise InputError("give either like= or n_cells/condition/dose, not both.")
            obs = like.obs if isinstance(like, ad.AnnData) else like
            where = "the --like reference"
            missing = [k for k in self.encoder.attributes if k not in obs.columns]
            if missing:
                raise InputError(f"{where} lacks the column(s) {missing} the model was trained on; "
                                 f"its columns are: {', '.join(map(str, obs.columns))}.")
            frame = obs[list(self.encoder.attributes)].reset_index(drop=True)
        else:
            n_cells = 1000 if n_cells is None else n_cells
            frame = None
            where = "the request"
        if like is None and from_ is None:
            if not isinstance(n_cells, (int, np.integer)) or not 0 < n_cells <= MAX_CELLS:
                raise InputError(f"n_cells = {n_cells} needs to be a whole number "
                                 f"between 1 and {MAX_CELLS:,}.")
            frame = self.encoder.request_obs(int(n_cells), condition, dose, rng)
        if len(frame) == 0:
            raise InputError("the reference holds no cells; nothing to generate.")
        codes, doses = self.encoder.encode(frame, where=where)
        self.encoder.warn_unseen_combinations(frame, hint="" if isinstance(guidance, Mapping) else _COMPOSE)
        z = self._generate(codes, doses, guidance=guidance, steps=steps,
                           eta=1.0 if sampler == "ddpm" else 0.0, seed=seed, device=device,
                           precision=precision, batch_size=batch_size, progress=progress,
                           x_start=x_start, t_start=t_start)
        X = self.preprocessor.inverse(z, zeros=zeros != "none")
        if counts or zeros == "cell":  # one drawn library size per cell serves both
            lib = draw_library_sizes(self.library, frame, self.encoder.keys, rng)
        if zeros == "cell":
            X = round_below_one_read(X, lib, rng, target_sum=self.preprocessor.target_sum, copy=False)
        obs = self.encoder.to_obs(frame)
        obs.index = pd.Index([f"gen-{i}" for i in range(len(obs))])
        out = ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=pd.Index(self.genes)))
        if counts:
            out.layers["log1p"] = X
            out.X = counts_from_log(X, lib, rng)
        out.uns["scdiff"] = {
            "run": self._run_path or "", "sampler": sampler, "steps": int(steps),
            "guidance": dict(guidance) if isinstance(guidance, Mapping) else float(guidance),
            "seed": int(seed), "version": _run.package_versions()["scdiff"],
            "train_seed": self.seed if self.seed is not None else -1,
            "space": "counts" if counts else "log1p_cp10k",
            "zeros": zeros,
        }
        if from_ is not None:
            out.obs["translated_from"] = from_.obs_names.astype(str).to_numpy()
            out.uns["scdiff"]["strength"] = float(strength)
        return out

    def _generate(self, codes: np.ndarray, doses: np.ndarray, *, guidance, steps: int, eta: float,
                  seed: int, device: str, precision: str, batch_size: int, progress: bool,
                  x_start: np.ndarray | None = None, t_start: int | None = None) -> np.ndarray:
        dev = resolve_device(device)
        autocast = resolve_precision(precision, dev)
        net = copy_with_state(self.network, self.ema_state).to(dev)
        gen = torch.Generator(device=dev).manual_seed(seed)
        guide = Guidance(self.encoder.attributes, guidance, pairs=self._dose_pairs())
        null = torch.tensor(self.encoder.n_categories, dtype=torch.long, device=dev)
        n = codes.shape[0]
        out = np.empty((n, len(self.genes)), dtype=np.float32)
        chunks = range(0, n, batch_size)
        total = len(chunks) * len(self.schedule.timesteps(steps))
        with progress_bar("sampling", total, enabled=progress) as bar:
            for start in chunks:
                sl = slice(start, start + batch_size)
                x = sample_loop(
                    net, self.schedule, torch.from_numpy(codes[sl]).to(dev),
                    torch.from_numpy(doses[sl]).to(dev), null_codes=null, guidance=guide,
                    steps=steps, eta=eta, generator=gen, autocast_dtype=autocast,
                    on_step=bar.advance, t_start=t_start,
                    x_start=None if x_start is None else torch.from_numpy(x_start[sl]).to(dev),
                )
                out[sl] = x.float().cpu().numpy()
        return out

    def _dose_pairs(self) -> dict[str, str]:
        """Dose -> the categorical attribute (drug) it is the dose of."""
        pairs = self.network_config.get("dose_pairs") or []
        keys = self.encoder.keys
        return {d: keys[p] for d, p in zip(self.encoder.dose_keys, pairs, strict=False) if p >= 0}

    # -- persistence --------------------------------------------------------------------------
    def _config(self) -> dict:
        return {
            "network": self.network_config,
            "schedule": self.schedule.to_config(),
            "preprocess": self.preprocessor.to_config(),
            "conditions": self.encoder.to_config(),
            "library_sizes": self.library,
            "train": self.train_config.to_config() if self.train_config else None,
            "seed": self.seed,
        }

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the run directory (weights, config, log, loss plot)."""
        if not self.is_trained:
            raise RunError("the model is not trained yet; call model.train() before save().")
        path = _run.prepare_dir(path, overwrite=overwrite)
        _run.write_run(path, self._config(),
                       {"model": self.network.state_dict(), "ema": self.ema_state})
        if self.log:
            buf = io.StringIO()
            columns = list(dict.fromkeys(k for row in self.log for k in row))  # monitor rows add mmd
            writer = csv.DictWriter(buf, fieldnames=columns)
            writer.writeheader()
            writer.writerows(self.log)
            atomic_write(path / _run.LOG, lambda tmp: tmp.write_text(buf.getvalue()))
            from scdiff.pl import loss as plot_loss

            atomic_write(path / _run.PLOT, lambda tmp: plot_loss(pd.DataFrame(self.log), save=tmp))
        ckpt = path / _run.CHECKPOINT
        if ckpt.exists():  # training finished: the final weights supersede the checkpoint
            ckpt.unlink()
        self._run_path = str(path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> ConditionalDiffusion:
        """Rebuild a trained model from a run directory; needs no training data."""
        config = _run.read_config(path)
        try:
            self = cls.__new__(cls)
            self.preprocessor = Preprocessor.from_config(config["preprocess"])
            self.encoder = ConditionEncoder.from_config(config["conditions"])
            self.library = config.get("library_sizes", {})
            self.schedule = NoiseSchedule.from_config(config["schedule"])
            self.network_config = dict(config["network"])
            self.network = ConditionalMLP(**self.network_config)
            self.train_config = TrainConfig.from_config(config["train"]) if config.get("train") else None
            self.seed = config.get("seed")
        except (KeyError, TypeError) as err:
            raise RunError(f"{path}/config.json is missing or has unexpected entries ({err}); "
                           "the run is damaged or from another version: train again.") from err
        try:
            self.network.load_state_dict(_run.read_weights(path, config, "model"))
            self.ema_state = _run.read_weights(path, config, "ema")
            copy_with_state(self.network, self.ema_state)
        except RuntimeError as err:
            raise RunError(f"the weights in {path} do not fit its config.json; the run is damaged.") from err
        log_path = Path(path) / _run.LOG
        self.log = pd.read_csv(log_path).to_dict("records") if log_path.exists() else []
        self._data = None
        self._run_path = str(path)
        return self

    def info(self) -> dict:
        """What the run holds, as plain data (the CLI's ``scdiff info``)."""
        pre = self.preprocessor
        return {
            "genes": len(pre.genes), "input_scale": pre.input_scale, "layer": pre.layer,
            "hvg_selected": pre.hvg, "genes_in_input": pre.n_genes_input,
            "conditions": {k: c for k, c in zip(self.encoder.keys, self.encoder.categories, strict=True)},
            "doses": {k: [v[0], v[-1]] if v else [] for k, v in
                      zip(self.encoder.dose_keys, self.encoder.dose_values, strict=True)},
            "network": self.network_config,
            "parameters": sum(p.numel() for p in self.network.parameters()),
            "schedule": self.schedule.to_config(),
            "train": self.train_config.to_config() if self.train_config else None,
            "final_loss": self.log[-1]["loss"] if self.log else None,
        }

    # -- large output -------------------------------------------------------------------------
    def sample_to_h5ad(
        self,
        path: str | os.PathLike,
        n_cells: int | None = None,
        *,
        like: ad.AnnData | pd.DataFrame | None = None,
        chunk_size: int = 32768,
        seed: int = 0,
        overwrite: bool = False,
        progress: bool = False,
        **options,
    ) -> Path:
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
        from scdiff.data._backed import write_h5ad_chunks
        from scdiff.data._io import check_output

        path = check_output(path, overwrite=overwrite, suffixes=(".h5ad",))
        if chunk_size < 1:
            raise InputError(f"chunk_size = {chunk_size} needs to be at least 1.")
        frame = None if like is None else (like.obs if isinstance(like, ad.AnnData) else like)
        total = len(frame) if frame is not None else (1000 if n_cells is None else n_cells)
        if frame is None and (not isinstance(total, (int, np.integer)) or not 0 < total <= MAX_CELLS):
            raise InputError(f"n_cells = {n_cells} needs to be a whole number between 1 and "
                             f"{MAX_CELLS:,}.")
        starts = range(0, int(total), chunk_size)

        def chunks():
            with progress_bar("sampling", len(starts), enabled=progress) as bar:
                for i, a in enumerate(starts):
                    b = min(a + chunk_size, total)
                    s = seed if i == 0 else int(np.random.SeedSequence([seed, i]).generate_state(1)[0])
                    part = (self.sample(like=frame.iloc[a:b], seed=s, **options) if frame is not None
                            else self.sample(b - a, seed=s, **options))
                    part.obs.index = pd.Index([f"gen-{j}" for j in range(a, b)])
                    if i == 0:
                        part.uns["scdiff"]["chunk_size"] = int(chunk_size)
                    bar.advance()
                    yield part

        atomic_write(path, lambda tmp: write_h5ad_chunks(tmp, chunks()))
        return path
