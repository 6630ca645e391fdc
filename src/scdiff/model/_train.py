"""The work of :meth:`ConditionalDiffusion.train`: in a latent space its autoencoder first
(or taken from a checkpoint of the second phase), the training cells moved into the space,
then the diffusion; under torchrun both phases in one process group.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import torch

from scdiff._progress import progress_bar
from scdiff.data._backed import BackedCells
from scdiff.model import _fit, _run
from scdiff.model._setup import ModelParts
from scdiff.model._space import Cells, log_rate_init, network_cells, standardised_blocks
from scdiff.train import CountObjective, TrainConfig, TrainResult, resolve_device
from scdiff.train._distributed import distributed, is_main_process
from scdiff.train._mean import MEAN_STEPS, ConditionMeans, fit_mean


@dataclass
class Trained:
    """What a training run leaves: the diffusion's result and config, the space's training."""

    result: TrainResult
    config: TrainConfig
    space_train: TrainConfig | None = None
    space_log: list[dict] = field(default_factory=list)


def fit_space(parts: ModelParts, cells: Cells, cfg: TrainConfig, *, device: str, progress: bool,
              checkpoint_dir, resume: _fit.Resume | None) -> list[dict]:
    """The first phase of a latent space's training: fit its autoencoder to the training
    cells (``cells.counts``), then standardise the latent by their encodings. Returns the
    autoencoder's training log."""
    space = parts.space
    torch.manual_seed(cfg.seed)
    ae = space.build_autoencoder(log_rate_init(cells.counts, space.target_sum))
    objective = CountObjective(kl_weight=space.kl_weight, kl_warmup=max(1, cfg.steps // 3),
                               target_sum=space.target_sum)
    result = _fit.fit(parts, ae, cells.counts, cfg, device=device, progress=progress,
                      checkpoint_dir=checkpoint_dir, resume=resume, objective=objective, phase="space")
    space.set_autoencoder({k: v.to("cpu") for k, v in result.ema_state.items()})
    space.set_latents(np.concatenate([space.posterior_means(b) for b in standardised_blocks(cells.genes)]),
                      cells.counts.sizes)
    return result.log


def _space_phase(parts: ModelParts, cells: Cells, cfg: TrainConfig, resume: _fit.Resume | None, *,
                 steps: int | None, given: bool, device: str, progress: bool, checkpoint_dir
                 ) -> tuple[TrainConfig | None, list[dict], _fit.Resume | None]:
    """(the space's training config, its log, what the diffusion resumes from): the
    autoencoder trained, or restored from a checkpoint of the diffusion phase."""
    if parts.space.kind != "latent":
        return None, [], resume
    if resume is not None and resume.phase == "diffusion":
        kept, meta = dict(resume.kept), resume.meta
        log = _run.log_rows(kept.pop("space_log"), meta["space_log_columns"])
        parts.space.load_tensors(kept)
        return TrainConfig.from_config(meta["space_train"]), log, resume
    space_cfg = resume.config if resume is not None else _fit.space_config(
        cfg, len(cells), steps=steps, given=given)
    log = fit_space(parts, cells, space_cfg, device=device, progress=progress,
                    checkpoint_dir=checkpoint_dir, resume=resume)
    return space_cfg, log, None


def fit_condition_means(network: torch.nn.Module, data, *, steps: int, seed: int, device: str,
                        progress: bool) -> list[float]:
    """The phase before the diffusion, for a network with a mean model: fit it to the
    training cells' condition means (``data`` in the network's space). Returns its loss
    every 100 steps."""
    codes, doses = ((data.codes, data.doses) if isinstance(data, BackedCells)
                    else (data.cats.numpy(), data.doses.numpy()))
    groups = ConditionMeans.of_blocks(standardised_blocks(data), codes, doses)
    with progress_bar("condition means", steps, enabled=progress and is_main_process()) as bar:
        losses = fit_mean(network.mean, groups, steps=steps, seed=seed, device=resolve_device(device),
                          on_step=bar.update)
    return losses


def _kept(parts: ModelParts, space_cfg: TrainConfig | None, space_log: list[dict]) -> dict:
    """What a checkpoint of the diffusion phase keeps of a trained latent space."""
    if space_cfg is None:
        return {}
    table, columns = _run.log_tensor(space_log)
    return {"keep": {**parts.space.tensors(), "space_log": table},
            "meta": {"space_train": space_cfg.to_config(), "space_log_columns": columns}}


def train(parts: ModelParts, cells: Cells, *, options: dict, device: str, progress: bool,
          checkpoint_dir: str | os.PathLike | None, resume: bool, monitor, monitor_every: int,
          patience: int | None, autoencoder_steps: int | None) -> Trained:
    """Both phases of a model's training (``options``: those of :func:`_fit.train_config`)."""
    resume_from = _fit.read_resume(checkpoint_dir, parts) if resume else None
    cfg = (resume_from.config if resume_from and resume_from.phase == "diffusion" else
           _fit.train_config(parts, len(cells), device=device, **options))
    given = options.get("steps") is not None or options.get("epochs") is not None
    # one process group for both phases: a second one would be set up on the same port
    with distributed(resolve_device(device)):
        space_cfg, space_log, resume_from = _space_phase(
            parts, cells, cfg, resume_from, steps=autoencoder_steps, given=given, device=device,
            progress=progress, checkpoint_dir=checkpoint_dir)
        torch.manual_seed(cfg.seed)
        network = parts.build_network()
        data, watcher = _fit.monitor_split(parts, network_cells(parts.space, cells), monitor,
                                           patience, cfg.seed)
        if network.mean is not None:  # fitted first, or restored with the diffusion's checkpoint
            if resume_from is None:  # as long as the diffusion where its length was given
                fit_condition_means(network, data, steps=min(cfg.steps, MEAN_STEPS) if given else MEAN_STEPS,
                                    seed=cfg.seed, device=device, progress=progress)
            network.mean.requires_grad_(False)  # held fixed through the diffusion
        result = _fit.fit(parts, network, data, cfg, device=device, progress=progress,
                          checkpoint_dir=checkpoint_dir, resume=resume_from, watcher=watcher,
                          monitor_every=monitor_every, **_kept(parts, space_cfg, space_log))
    return Trained(result, cfg, space_cfg, space_log)
