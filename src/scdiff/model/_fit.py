"""Training a model's network: its configuration, the monitor, checkpoints and resumption.

The work of :meth:`ConditionalDiffusion.train`, on the model's parts and training cells.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import anndata as ad
import numpy as np
import torch

from scdiff._errors import InputError, RunError, TrainingInterrupted, arg
from scdiff._interrupt import graceful_stop
from scdiff._progress import progress_bar
from scdiff._threads import check_threads
from scdiff.diffusion._schedule import check_loss_weighting
from scdiff.model import _run
from scdiff.model._monitor import SampleMonitor
from scdiff.model._setup import ModelParts
from scdiff.train import (
    CellTensors,
    TrainConfig,
    Trainer,
    TrainResult,
    resolve_device,
    resolve_precision,
    scaled_lr,
)
from scdiff.train._batch import atlas_batch
from scdiff.train._data import PosteriorCells
from scdiff.train._distributed import distributed, is_main_process

#: The default length of data smaller than one batch (a table of a few hundred rows), where
#: every step is a whole pass: 2,000 such passes let generated rows copy training rows.
SMALL_DATA_STEPS = 120


#: The default length of a plain table, in passes over it: longer brought generated rows
#: closer to training rows than held-out rows are, with no gain in ML efficacy
#: (docs/tabular.md measures 100, 200, 300 and 600).
TABLE_PASSES = 100


def auto_steps(n_cells: int, batch_size: int, *, table: bool = False) -> int:
    """Default training length: 600 epochs, at least 2,000 steps and at most 20,000 (about
    two minutes on a 2-core CPU for small data); :data:`SMALL_DATA_STEPS` passes where all
    the cells fit in one batch. A plain table (``table``): :data:`TABLE_PASSES` passes, at
    least :data:`SMALL_DATA_STEPS` steps and at most 20,000.

    Examples
    --------
    >>> auto_steps(490, 256), auto_steps(2100, 256, table=True), auto_steps(124, 256, table=True)
    (2000, 820, 120)
    """
    if n_cells < batch_size:
        return SMALL_DATA_STEPS
    if table:
        return int(np.clip(TABLE_PASSES * n_cells / batch_size, SMALL_DATA_STEPS, 20000))
    epochs_equiv = 600 * n_cells / batch_size
    return int(np.clip(epochs_equiv, 2000, 20000))


#: Training presets: ``default`` (batch 256) and ``atlas`` (a batch from the device's
#: memory, CUDA graphs on a GPU; :func:`preset_settings`).
PRESETS = ("default", "atlas")


def check_options(*, epochs=None, steps=None, batch_size=None, lr=None, device="auto",
                  precision="auto", seed=0, p_uncond=0.1, loss_weighting="snr_cap", snr_gamma=5.0,
                  checkpoint_every=500, monitor=None, monitor_every=250, patience=None,
                  threads="auto", preset="default", autoencoder_steps=None, **_) -> None:
    """Refuse a bad training option before any data is read or any folder made."""
    if autoencoder_steps is not None:
        _whole(autoencoder_steps, "autoencoder_steps", 1)
    if preset not in PRESETS:
        raise InputError(f"{arg('preset', preset)} needs to be one of {', '.join(PRESETS)}.")
    for name, value, low in (("epochs", epochs, 1), ("steps", steps, 1), ("patience", patience, 1),
                             ("batch_size", batch_size, 1)):
        if value is not None:
            _whole(value, name, low)
    for name, value, low in (("seed", seed, 0),
                             ("monitor_every", monitor_every, 1), ("checkpoint_every", checkpoint_every, 0)):
        _whole(value, name, low)
    if lr is not None and not (_real(lr) and lr > 0):
        raise InputError(f"{arg('lr', lr)} needs to be a positive number (or left out for the default).")
    if not (_real(p_uncond) and 0 <= p_uncond < 1):
        raise InputError(f"{arg('p_uncond', p_uncond)} needs to be in [0, 1).")
    check_loss_weighting(loss_weighting, snr_gamma)
    resolve_precision(precision, resolve_device(device))
    if monitor is not None and not isinstance(monitor, ad.AnnData) and not (
            _real(monitor) and 0 < monitor < 0.5):
        raise InputError(f"{arg('monitor', monitor)} needs to be a fraction between 0 and 0.5 "
                         "(of the training cells to hold out) or an AnnData.")
    check_threads(threads)


def _real(value) -> bool:
    return isinstance(value, int | float | np.number) and not isinstance(value, bool) \
        and bool(np.isfinite(value))


def _whole(value, name: str, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise InputError(f"{arg(name, value)} needs to be a whole number >= {low}.")


def preset_settings(preset: str, batch_size: int | None, parts: ModelParts, n_cells: int,
                    device: str, precision: str) -> tuple[int, bool]:
    """(batch size, compile) of a training preset; a ``batch_size`` given is kept.

    ``default``: batch 256, eager. ``atlas``: on a GPU the largest batch half its free
    memory holds (:func:`scdiff.train.atlas_batch`, 4096 to 65536) and the network
    compiled with CUDA graphs; on the CPU batch 4096; never more than 1/32 of the cells.
    """
    if preset == "default":
        return (256 if batch_size is None else batch_size), False
    dev = resolve_device(device)
    if batch_size is None:  # a network to measure only where the batch comes from its memory
        net = parts.build_network() if dev.type == "cuda" else None
        autocast = None if net is None else resolve_precision(
            precision, dev, n_params=sum(p.numel() for p in net.parameters()))
        batch_size = atlas_batch(net, dev, n_cells, autocast=autocast)
    return batch_size, dev.type == "cuda"


def train_config(parts: ModelParts, n_cells: int, *, preset: str, device: str, epochs: int | None,
                 steps: int | None, batch_size: int | None, lr: float | None, precision: str,
                 seed: int, p_uncond: float, checkpoint_every: int, loss_weighting: str,
                 snr_gamma: float) -> TrainConfig:
    """The :class:`TrainConfig` of a new run on ``n_cells`` cells (batch size from ``preset``
    where none is given)."""
    batch_size, compiled = preset_settings(preset, batch_size, parts, n_cells, device, precision)
    weighting = check_loss_weighting(loss_weighting, snr_gamma)
    if lr is None:  # larger batches, larger steps: square-root scaling (Adam)
        lr = scaled_lr(batch_size) if batch_size >= 1 else 1e-3
    if batch_size < 1 or lr <= 0:
        raise InputError(f"{arg('batch_size')} needs to be >= 1 and {arg('lr')} > 0.")
    per_epoch = max(1, n_cells // min(batch_size, n_cells))
    if steps is None:
        steps = epochs * per_epoch if epochs is not None else auto_steps(
            n_cells, batch_size, table=parts.table is not None)
    if steps < 1:
        raise InputError(f"training needs at least one step (got {arg('steps', steps)}, "
                         f"{arg('epochs', epochs)}).")
    # checkpoints on log boundaries, so a resumed log continues the same rows
    every = max(20, (checkpoint_every // 20) * 20) if checkpoint_every else 0
    return TrainConfig(steps=int(steps), batch_size=int(batch_size), lr=float(lr),
                       precision=precision, seed=int(seed), p_uncond=float(p_uncond),
                       loss_weighting=weighting[0], snr_gamma=weighting[1],
                       warmup_steps=min(100, max(1, steps // 10)), log_every=20,
                       checkpoint_every=every, compile=bool(compiled))


@dataclass
class Resume:
    """Where a checkpoint left training: the phase (the space's autoencoder, or the
    diffusion), the step, the state tensors, the log, the monitor, and the tensors kept
    beside them (the fitted space, in the diffusion phase)."""

    config: TrainConfig
    step: int
    tensors: dict[str, torch.Tensor]
    log: list[dict]
    monitor: dict | None
    phase: str = "diffusion"
    kept: dict[str, torch.Tensor] | None = None
    meta: dict | None = None  # everything the checkpoint recorded (the space's training, ...)


def read_resume(checkpoint_dir: str | os.PathLike | None, parts: ModelParts) -> Resume:
    """The checkpoint in ``checkpoint_dir``, if it belongs to these parts."""
    if checkpoint_dir is None:
        raise InputError(f"{arg('resume', True)} needs the run directory that holds the checkpoint "
                         f"({arg('checkpoint_dir')}).")
    meta, tensors, log = _run.read_checkpoint(checkpoint_dir)
    if meta.get("fingerprint") != parts.fingerprint():
        raise RunError(f"the checkpoint in {checkpoint_dir} was trained on other data or options "
                       "(genes, conditions, space or network differ); resume with the same data and "
                       f"options, or start over with {arg('overwrite', True)}.")
    n = len(_run.KEEP_PREFIX)
    kept = {k[n:]: tensors.pop(k) for k in list(tensors) if k.startswith(_run.KEEP_PREFIX)}
    return Resume(TrainConfig.from_config(meta["train"]), int(meta["step"]), tensors, log,
                  meta.get("monitor"), meta.get("phase", "diffusion"), kept, meta)


def monitor_split(parts: ModelParts, data, monitor, patience: int | None, seed: int):
    """The cells to train on and the :class:`SampleMonitor` (None without ``monitor``);
    ``data`` are in the network's space, and so are the monitor's cells."""
    if monitor is None:
        return data, None
    if isinstance(monitor, ad.AnnData):
        from scdiff.model._space import encode_cells

        x = encode_cells(parts, monitor, "the monitor cells")
        codes, doses = parts.encoder.encode(monitor.obs, where="the monitor cells")
    else:  # a fraction, checked by check_options
        n = len(data)
        held = np.random.default_rng(seed).permutation(n)[: max(20, int(n * float(monitor)))]
        keep = np.setdiff1d(np.arange(n), held)
        x, codes, doses = (t[held].numpy() for t in (data.x, data.cats, data.doses))
        spread = getattr(data, "spread", None)
        data = (CellTensors(data.x[keep], data.cats[keep], data.doses[keep]) if spread is None else
                PosteriorCells(data.x[keep], data.cats[keep], data.doses[keep], spread=spread[keep]))
    if len(x) < 20:
        raise InputError("monitoring needs at least 20 held-out cells; give a larger fraction.")
    watcher = SampleMonitor(parts.network_config, parts.schedule, x, codes, doses,
                            parts.encoder.attributes, patience=patience, seed=seed)
    return data, watcher


def fit(parts: ModelParts, network: torch.nn.Module, data, cfg: TrainConfig, *, device: str,
        progress: bool, checkpoint_dir: str | os.PathLike | None, resume: Resume | None,
        watcher: SampleMonitor | None = None, monitor_every: int = 250, objective=None,
        phase: str = "diffusion", keep: dict[str, torch.Tensor] | None = None,
        meta: dict | None = None) -> TrainResult:
    """Train ``network`` on ``data``: progress bar, checkpoints, Ctrl-C/SIGTERM, torchrun.

    ``objective`` is the diffusion's (the schedule's, by default) or the space's
    autoencoder loss; ``phase`` (``"space"`` or ``"diffusion"``) is recorded in each
    checkpoint, with ``keep`` (tensors a resume of this phase needs: the fitted space) and
    ``meta`` (what else it needs to know: the space's training).
    Raises :class:`TrainingInterrupted` when a signal stopped training (after saving a
    checkpoint where ``checkpoint_dir`` was given).
    """
    dev = resolve_device(device)
    if checkpoint_dir is not None and is_main_process():
        _run.ensure_dir(checkpoint_dir)
    first = resume.step if resume else 0
    if resume is not None and watcher is not None and resume.monitor:
        watcher.load_state(resume.monitor)
    start = time.perf_counter()
    # under torchrun: one process group for the fit; rank 0 alone shows progress and saves
    with (distributed(dev) as dev,
          progress_bar("training" if phase == "diffusion" else "autoencoder", cfg.steps,
                       enabled=progress and is_main_process(), show_loss=True) as bar,
          graceful_stop() as stop):
        trainer = Trainer(cfg, parts.schedule if objective is None else objective, dev)
        bar.update(first)

        def on_log(step: int, row: dict) -> None:
            rate = (step - first) / max(time.perf_counter() - start, 1e-9)
            shown = f"{row['loss']:.4f}" + (f" mmd {row['mmd']:.3f}/{row['mmd_floor']:.3f}"
                                             if "mmd" in row else "")
            bar.update(step, loss=shown, rate=f"{rate:.1f} steps/s ({rate * cfg.batch_size:,.0f} cells/s)")

        def on_checkpoint(step: int, tensors: dict[str, torch.Tensor], log: list[dict]) -> None:
            info = {**(meta or {}), "step": step, "train": cfg.to_config(), "phase": phase,
                    "fingerprint": parts.fingerprint(),
                    "monitor": watcher.state() if watcher is not None else None}
            extra = {f"{_run.KEEP_PREFIX}{k}": v for k, v in (keep or {}).items()}
            _run.write_checkpoint(checkpoint_dir, {**tensors, **extra}, log, info)

        result = trainer.fit(network, data, on_log=on_log,
                             on_checkpoint=on_checkpoint if checkpoint_dir else None, should_stop=stop,
                             resume=(first, resume.tensors, resume.log) if resume else None,
                             on_eval=watcher,
                             eval_every=max(cfg.log_every, monitor_every // cfg.log_every * cfg.log_every))
    if result.stopped:
        where = (f"checkpoint saved in {checkpoint_dir}; continue with {arg('resume', True)}"
                 if checkpoint_dir else f"no {arg('checkpoint_dir')} was given, so nothing was saved")
        raise TrainingInterrupted(f"training stopped by {stop.signal_name} at step "
                                  f"{result.step} of {cfg.steps}; {where}.")
    return result


def autoencoder_steps(n_cells: int, batch_size: int) -> int:
    """The default length of the space's autoencoder training: 30 passes over the data,
    between 1,500 and 6,000 steps (docs/fidelity.md)."""
    return int(np.clip(30 * n_cells / batch_size, 1500, 6000))


def space_config(cfg: TrainConfig, n_cells: int, *, steps: int | None, given: bool) -> TrainConfig:
    """The :class:`TrainConfig` of the space's autoencoder, from the diffusion's: the same
    batch, learning rate, precision, seed and checkpoints; ``steps`` if given, the
    diffusion's steps where those were given (``given``: a quick run stays quick), else
    :func:`autoencoder_steps`."""
    if steps is not None:
        _whole(steps, "autoencoder_steps", 1)
    n = steps if steps is not None else cfg.steps if given else autoencoder_steps(n_cells, cfg.batch_size)
    return TrainConfig(steps=int(n), batch_size=cfg.batch_size, lr=cfg.lr, precision=cfg.precision,
                       seed=cfg.seed, warmup_steps=min(100, max(1, n // 10)), log_every=cfg.log_every,
                       checkpoint_every=cfg.checkpoint_every, compile=cfg.compile)
