"""The trainer: moves tensors, nothing else.

AdamW, warm-up + cosine learning rate, EMA with warm-up, gradient clipping,
classifier-free guidance by per-attribute condition dropout, mixed precision,
and DistributedDataParallel when torch.distributed is initialised (torchrun).
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

import torch
import torch.distributed as dist
from torch import nn

from scdiff._errors import InputError, arg
from scdiff._seeds import rank_seed
from scdiff.diffusion import NoiseSchedule
from scdiff.train._data import CellTensors
from scdiff.train._objectives import CountObjective, DiffusionObjective
from scdiff.train._state import EMA, TrainResult, checkpoint_tensors, reseed_rank, restore_checkpoint


@dataclass
class TrainConfig:
    """Hyper-parameters of one training run (recorded in the run's config)."""

    steps: int = 2000
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.01
    ema_decay: float = 0.999
    ema_every: int = 4
    grad_clip: float = 1.0
    p_uncond: float = 0.1
    loss_weighting: str = "snr_cap"
    snr_gamma: float = 5.0
    warmup_steps: int = 100
    precision: str = "auto"
    seed: int = 0
    log_every: int = 20
    checkpoint_every: int = 0
    compile: bool = False

    def to_config(self) -> dict:
        return asdict(self)

    @classmethod
    def from_config(cls, config: dict) -> TrainConfig:
        """The config as recorded; runs from before loss weighting trained without it."""
        return cls(**{"loss_weighting": "none", **config})


def resolve_device(device: str) -> torch.device:
    """``"auto"`` -> CUDA when present, else CPU; anything else as torch reads it."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as err:
        raise InputError(f"device {device!r} is not one torch knows; use auto, cpu or cuda.") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device 'cuda' asked but no CUDA GPU is visible; use {arg('device', 'cpu')} "
                         "or 'auto'.")
    return dev


#: On the CPU, ``auto`` trains in bf16 from this many parameters on (smaller networks
#: spend more on autocast's casts than the bf16 matmuls save).
AUTO_BF16_MIN_PARAMS = 1_000_000


@functools.cache
def cpu_has_fast_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX512-BF16 or AMX), where oneDNN uses it."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        with open("/proc/cpuinfo") as fh:
            flags = fh.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str, device: torch.device, *,
                      n_params: int | None = None) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device`` (None means plain fp32).

    ``auto`` is bf16 on GPUs that support it (else fp16), and on CPUs with native bf16
    for networks of at least :data:`AUTO_BF16_MIN_PARAMS` parameters (``n_params``);
    fp32 otherwise.

    Examples
    --------
    >>> resolve_precision("fp32", torch.device("cpu")) is None
    True
    """
    if precision not in ("auto", "fp32", "bf16", "fp16"):
        raise InputError(f"{arg('precision', precision)} needs to be one of auto, fp32, bf16, fp16.")
    if precision == "fp32":
        return None
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        big = n_params is not None and n_params >= AUTO_BF16_MIN_PARAMS
        return torch.bfloat16 if big and cpu_has_fast_bf16() else None
    if precision == "fp16" and device.type != "cuda":
        raise InputError("precision fp16 needs a CUDA GPU; use bf16 or fp32 on the CPU.")
    return torch.bfloat16 if precision == "bf16" else torch.float16


def compile_network(net: nn.Module, device: torch.device) -> nn.Module:
    """``net`` compiled by torch.compile; on a GPU with CUDA graphs (``reduce-overhead``),
    so a step of a small network is a few graph launches instead of hundreds of kernels.
    The parameters stay ``net``'s own."""
    return torch.compile(net, mode="reduce-overhead" if device.type == "cuda" else None)


def scaled_lr(batch_size: int, *, base_lr: float = 1e-3, base_batch: int = 256) -> float:
    """The default peak learning rate: ``base_lr`` at ``base_batch``, square-root scaled.

    Square-root scaling keeps Adam's update noise about constant as the batch grows
    (Malladi et al. 2022); capped at 8x ``base_lr``, for batches beyond 16k cells.

    Examples
    --------
    >>> scaled_lr(256), scaled_lr(4096)
    (0.001, 0.004)
    """
    return base_lr * min(8.0, math.sqrt(batch_size / base_batch))


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up then cosine decay to 10% of the peak."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    frac = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))


@dataclass
class _Fit:
    """The state of one fit: network (and its DDP wrapper), optimizer, EMA, random streams."""

    net: nn.Module
    train_net: nn.Module
    opt: torch.optim.Optimizer
    ema: EMA
    gen: torch.Generator  # the CPU stream (bit-for-bit resumable)
    dgen: torch.Generator  # where t, noise and dropout are drawn (gen on the CPU)
    scaler: torch.amp.GradScaler
    amp: contextlib.AbstractContextManager
    batches: Iterator
    running: torch.Tensor  # sums since the last log row: loss, gradient norm, steps
    rank: int
    world: int
    start: int
    log: list[dict]


class Trainer:
    """Fits a network to an objective: the diffusion loss on :class:`CellTensors` (a
    :class:`~scdiff.diffusion.NoiseSchedule` given as the objective means that, with the
    config's condition dropout and loss weighting), or the latent space's autoencoder
    loss (:class:`~scdiff.train.CountObjective`) on count batches.

    ``on_log(step, metrics)`` is called every ``log_every`` steps (rank 0 only):
    the library never prints; the caller draws progress. ``on_checkpoint(step,
    tensors, log)`` receives :func:`checkpoint_tensors` and the log so far every
    ``checkpoint_every`` steps and when ``should_stop()`` turns true (then training
    returns early). ``resume`` (step, tensors and log from a checkpoint) continues
    exactly where that checkpoint was taken. ``on_eval(step, ema_state)`` is called
    every ``eval_every`` steps with a function giving the EMA weights; it returns
    metrics for the log and whether to stop early (the run is then complete).
    """

    def __init__(self, config: TrainConfig, objective: NoiseSchedule | DiffusionObjective | CountObjective,
                 device: torch.device) -> None:
        resolve_precision(config.precision, device)  # a bad precision fails here, not mid-run
        self.cfg = config
        if isinstance(objective, NoiseSchedule):
            objective = DiffusionObjective(objective, p_uncond=config.p_uncond,
                                           loss_weighting=config.loss_weighting,
                                           snr_gamma=config.snr_gamma)
        self.objective = objective
        self.device = device

    def fit(
        self,
        net: nn.Module,
        data: CellTensors,
        *,
        on_log: Callable[[int, dict], None] | None = None,
        on_checkpoint: Callable[[int, dict[str, torch.Tensor], list[dict]], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        resume: tuple[int, dict[str, torch.Tensor], list[dict]] | None = None,
        on_eval: Callable[[int, Callable[[], dict[str, torch.Tensor]]], tuple[dict, bool]] | None = None,
        eval_every: int = 0,
    ) -> TrainResult:
        cfg = self.cfg
        f = self._start(net, data, resume)
        step, stopped, early_stop = f.start, False, False
        f.net.train()
        while step < cfg.steps:
            loss, grad_norm = self._step(f, step)
            f.running += torch.stack([loss.detach(), grad_norm.detach(), torch.ones_like(loss)])
            step += 1
            last = step == cfg.steps
            if step % cfg.log_every == 0 or last:
                row = self._log_row(f, step)
                if on_eval is not None and f.rank == 0 and eval_every and step % eval_every == 0:
                    # monitoring (e.g. MMD of a small sample to held-out cells) with EMA weights
                    metrics, early = on_eval(step, lambda: f.ema.state_dict(f.net))
                    row.update(metrics)
                    early_stop = early_stop or early
                if f.rank == 0:
                    f.log.append(row)
                    if on_log is not None:
                        on_log(step, row)
            if early_stop and not last:
                break
            stop = self._agreed_stop(f, should_stop)
            periodic = cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and not last
            if on_checkpoint is not None and f.rank == 0 and (periodic or (stop and not last)):
                on_checkpoint(step, {**checkpoint_tensors(f.net, f.ema, f.opt, f.gen, f.dgen),
                                     "running": f.running}, f.log)
            if stop and not last:
                stopped = True
                break
        f.net.eval()
        return TrainResult(model=f.net, ema_state=f.ema.state_dict(f.net), log=f.log, step=step,
                           stopped=stopped)

    def _start(self, net: nn.Module, data: CellTensors,
               resume: tuple[int, dict[str, torch.Tensor], list[dict]] | None) -> _Fit:
        """Seed the streams, place the network and the data, restore a checkpoint."""
        cfg, device = self.cfg, self.device
        distributed = dist.is_available() and dist.is_initialized()
        rank = dist.get_rank() if distributed else 0
        world = dist.get_world_size() if distributed else 1
        torch.manual_seed(cfg.seed + rank)
        gen = torch.Generator().manual_seed(cfg.seed + rank)
        # t, noise and condition dropout: on the CPU from ``gen`` (bit-for-bit resumable);
        # on a GPU from a generator on the device, so no host-to-device copy per step
        dgen = (torch.Generator(device=device).manual_seed(cfg.seed + rank)
                if device.type == "cuda" else gen)
        net = net.to(device)
        autocast = resolve_precision(cfg.precision, device, n_params=sum(p.numel() for p in net.parameters()))
        train_net: nn.Module = compile_network(net, device) if cfg.compile else net
        if distributed:
            train_net = nn.parallel.DistributedDataParallel(
                net, device_ids=[device.index] if device.type == "cuda" else None
            )
        # the fused kernel (CUDA, and the CPU since torch 2.4) is one pass over all parameters
        opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
        ema = EMA(net, cfg.ema_decay)
        start, log = 0, []
        running = torch.zeros(3, device=device)
        if resume is not None:
            start, tensors, log = resume
            restore_checkpoint(tensors, net, ema, opt, gen, dgen)
            if "running" in tensors:  # a checkpoint between two log rows keeps their sums
                running = tensors["running"].to(device=device, dtype=torch.float32)
            if rank > 0:
                reseed_rank(gen, dgen, cfg.seed, rank, start)
            log = list(log)
        shard = data.shard(rank, world).to(device)
        batches = shard.batches(max(1, cfg.batch_size // world), rank_seed(cfg.seed, rank), start)
        scaler = torch.amp.GradScaler(device.type, enabled=autocast == torch.float16)
        amp = (torch.autocast(device_type=device.type, dtype=autocast)
               if autocast is not None else contextlib.nullcontext())
        self.objective.prepare(net, device)
        return _Fit(net, train_net, opt, ema, gen, dgen, scaler, amp, batches, running, rank, world,
                    start, log)

    def _step(self, f: _Fit, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step on the next minibatch; returns (loss, gradient norm), on the device."""
        cfg = self.cfg
        lr = lr_at(step, cfg)
        for group in f.opt.param_groups:
            group["lr"] = lr
        loss = self.objective(f.train_net, next(f.batches), f.dgen, f.amp, step)
        f.opt.zero_grad(set_to_none=True)
        f.scaler.scale(loss).backward()
        f.scaler.unscale_(f.opt)
        grad_norm = torch.nn.utils.clip_grad_norm_(f.net.parameters(), cfg.grad_clip)
        f.scaler.step(f.opt)
        f.scaler.update()
        f.ema.update(f.net, step, every=cfg.ema_every, last=step + 1 == cfg.steps)
        return loss, grad_norm

    def _log_row(self, f: _Fit, step: int) -> dict:
        """The log row of the steps since the last one (loss averaged over ranks); resets the sums."""
        loss = f.running[0].clone()
        if f.world > 1:
            dist.all_reduce(loss)
            loss /= f.world
        n_since = float(f.running[2])
        row = {"step": step, "loss": float(loss) / n_since, "grad_norm": float(f.running[1]) / n_since,
               "lr": lr_at(step - 1, self.cfg)}
        f.running.zero_()
        return row

    def _agreed_stop(self, f: _Fit, should_stop: Callable[[], bool] | None) -> bool:
        """Whether to stop now; under torch.distributed every rank stops at the same step."""
        stop = should_stop is not None and should_stop()
        if f.world > 1 and should_stop is not None:
            flag = torch.tensor(float(stop), device=self.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            stop = bool(flag.item())
        return stop
