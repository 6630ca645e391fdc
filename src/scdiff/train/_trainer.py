"""The trainer: moves tensors, nothing else.

AdamW, warm-up + cosine learning rate, EMA with warm-up, gradient clipping,
classifier-free guidance by per-attribute condition dropout, mixed precision,
and DistributedDataParallel when torch.distributed is initialised (torchrun).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.distributed as dist
from torch import nn

from scdiff._errors import InputError
from scdiff.diffusion import NoiseSchedule
from scdiff.train._data import CellTensors


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
        raise InputError("device 'cuda' asked but no CUDA GPU is visible; use --device cpu or auto.")
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
        raise InputError(f"precision {precision!r} needs to be one of auto, fp32, bf16, fp16.")
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


def drop_conditions(
    cats: torch.Tensor, doses: torch.Tensor, null_codes: torch.Tensor, p: float,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace each attribute independently by its null token with probability ``p``.

    Independent dropout gives every subset of attributes an unconditional counterpart,
    which per-attribute guidance needs.
    """
    if p <= 0:
        return cats, doses
    # drawn where the generator lives: the CPU (bit-for-bit resumable) or the GPU (no copy)
    drop_c = torch.rand(cats.shape, generator=generator, device=generator.device).to(cats.device) < p
    drop_d = torch.rand(doses.shape, generator=generator, device=generator.device).to(doses.device) < p
    cats = torch.where(drop_c, null_codes.to(cats.device), cats)
    doses = torch.where(drop_d, torch.full_like(doses, float("nan")), doses)
    return cats, doses


class EMA:
    """Exponential moving average of parameters, with warm-up (decay grows with step)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.shadow = [p.detach().clone() for p in model.parameters()]

    def decay_at(self, step: int) -> float:
        return min(self.decay, (1 + step) / (10 + step))

    @torch.no_grad()
    def update(self, model: nn.Module, step: int, *, every: int = 1, last: bool = False) -> None:
        """Fold in the weights after optimizer step ``step`` (0-based).

        With ``every`` > 1 the average is updated every ``every`` steps (and at the
        ``last``) with the decay raised to the steps it covers: the same average for
        weights that move little in between, at a fraction of the memory traffic. Which
        steps update depends on ``step`` alone, so a resumed run updates on the same ones.
        """
        k = every if (step + 1) % every == 0 else ((step + 1) % every if last else 0)
        if k == 0:
            return
        params = [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(self.shadow, params, 1.0 - self.decay_at(step) ** k)

    def state_dict(self, model: nn.Module) -> dict[str, torch.Tensor]:
        names = [n for n, _ in model.named_parameters()]
        state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        state.update({n: s.clone() for n, s in zip(names, self.shadow, strict=True)})
        return state

    def load(self, model: nn.Module, state: dict[str, torch.Tensor]) -> None:
        names = [n for n, _ in model.named_parameters()]
        self.shadow = [state[n].to(p.device).clone() for n, p in zip(names, model.parameters(), strict=True)]


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
class TrainResult:
    model: nn.Module  # raw weights, trained
    ema_state: dict[str, torch.Tensor]
    log: list[dict]
    step: int = 0  # steps done (less than config.steps when stopped early)
    stopped: bool = False
    early_stopped: bool = False  # the monitor asked to stop: training is complete, not interrupted


def checkpoint_tensors(net: nn.Module, ema: EMA, opt: torch.optim.Optimizer,
                       gen: torch.Generator,
                       device_gen: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Everything a bit-for-bit resume needs, as named tensors (safetensors, no pickle)."""
    out = {f"model.{k}": v for k, v in net.state_dict().items()}
    out.update({f"ema.{k}": v for k, v in ema.state_dict(net).items()})
    for i, state in opt.state_dict()["state"].items():
        for key, value in state.items():
            out[f"optim.{i}.{key}"] = torch.as_tensor(value)
    out["rng.trainer"] = gen.get_state()
    out["rng.torch"] = torch.get_rng_state()
    if device_gen is not None and device_gen is not gen:
        out["rng.device"] = device_gen.get_state()
    if device_gen is not None and device_gen.device.type == "cuda":
        # the network's dropout draws from the device's default generator, not from ours
        out["rng.cuda"] = torch.cuda.get_rng_state(device_gen.device)
    return out


def restore_checkpoint(tensors: dict[str, torch.Tensor], net: nn.Module, ema: EMA,
                       opt: torch.optim.Optimizer, gen: torch.Generator,
                       device_gen: torch.Generator | None = None) -> None:
    """Inverse of :func:`checkpoint_tensors` onto freshly built objects."""
    net.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    ema.load(net, {k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, i, name = key.split(".", 2)
            state.setdefault(int(i), {})[name] = value
    opt.load_state_dict({"state": state, "param_groups": opt.state_dict()["param_groups"]})
    gen.set_state(tensors["rng.trainer"])
    torch.set_rng_state(tensors["rng.torch"])
    if device_gen is not None and device_gen is not gen and "rng.device" in tensors:
        device_gen.set_state(tensors["rng.device"])
    if device_gen is not None and device_gen.device.type == "cuda" and "rng.cuda" in tensors:
        torch.cuda.set_rng_state(tensors["rng.cuda"], device_gen.device)


def reseed_rank(gen: torch.Generator, device_gen: torch.Generator, seed: int, rank: int,
                step: int) -> None:
    """Fresh random streams for a rank other than 0 that resumes from rank 0's checkpoint.

    The checkpoint holds rank 0's generator states; restored on every rank, they would
    give all ranks the same timesteps, noise and dropout masks from then on. Each rank
    other than 0 reseeds from (seed, rank, step) instead: a resumed multi-process run is
    then equal to an uninterrupted one in distribution, not bit for bit.
    """
    s = int(seed) + 1_000_003 * int(rank) + 7_919 * int(step)
    torch.manual_seed(s)  # the CPU and every CUDA device: the network's dropout
    gen.manual_seed(s)
    if device_gen is not gen:
        device_gen.manual_seed(s + 1)


class Trainer:
    """Fits a network to the diffusion objective on :class:`CellTensors`.

    ``on_log(step, metrics)`` is called every ``log_every`` steps (rank 0 only):
    the library never prints; the caller draws progress. ``on_checkpoint(step,
    tensors)`` receives :func:`checkpoint_tensors` every ``checkpoint_every`` steps
    and when ``should_stop()`` turns true (then training returns early).
    ``resume`` (tensors from a checkpoint, with ``step``) continues exactly where
    that checkpoint was taken.
    """

    def __init__(self, config: TrainConfig, schedule: NoiseSchedule, device: torch.device) -> None:
        self.cfg = config
        self.schedule = schedule
        self.device = device
        self.autocast_dtype = resolve_precision(config.precision, device)

    def fit(
        self,
        net: nn.Module,
        data: CellTensors,
        *,
        on_log: Callable[[int, dict], None] | None = None,
        on_checkpoint: Callable[[int, dict[str, torch.Tensor]], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        resume: tuple[int, dict[str, torch.Tensor], list[dict]] | None = None,
        on_eval: Callable[[int, Callable[[], dict[str, torch.Tensor]]], tuple[dict, bool]] | None = None,
        eval_every: int = 0,
    ) -> TrainResult:
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
        self.autocast_dtype = resolve_precision(cfg.precision, device,
                                                n_params=sum(p.numel() for p in net.parameters()))
        null_codes = torch.tensor(net.n_categories, dtype=torch.long, device=device)
        train_net: nn.Module = net
        if distributed:
            train_net = nn.parallel.DistributedDataParallel(
                net, device_ids=[device.index] if device.type == "cuda" else None
            )
        # the fused kernel (CUDA, and the CPU since torch 2.4) is one pass over all parameters
        opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                                fused=True)
        ema = EMA(net, cfg.ema_decay)
        start, log = 0, []
        if resume is not None:
            start, tensors, log = resume
            restore_checkpoint(tensors, net, ema, opt, gen, dgen)
            if rank > 0:
                reseed_rank(gen, dgen, cfg.seed, rank, start)
            log = list(log)
        shard = data.shard(rank, world).to(device)
        batches = shard.batches(max(1, cfg.batch_size // world), cfg.seed + 7919 * rank, start)
        use_scaler = self.autocast_dtype == torch.float16
        scaler = torch.amp.GradScaler(device.type, enabled=use_scaler)
        amp = (torch.autocast(device_type=device.type, dtype=self.autocast_dtype)
               if self.autocast_dtype is not None else contextlib.nullcontext())

        running = torch.zeros((), device=device)
        running_gn = torch.zeros((), device=device)
        n_since = 0
        T = self.schedule.num_timesteps
        net.train()
        step = start
        stopped = early_stop = False
        while step < cfg.steps:
            lr = lr_at(step, cfg)
            for group in opt.param_groups:
                group["lr"] = lr
            x0, cats, doses = next(batches)
            cats, doses = drop_conditions(cats, doses, null_codes, cfg.p_uncond, dgen)
            t = torch.randint(0, T, (x0.shape[0],), generator=dgen, device=dgen.device).to(device)
            noise = torch.randn(x0.shape, generator=dgen, device=dgen.device).to(device)
            x_t = self.schedule.add_noise(x0, noise, t)
            target = self.schedule.target(x0, noise, t)
            with amp:
                out = train_net(x_t, t, cats, doses)
            per_cell = ((out.float() - target) ** 2).mean(dim=1)
            loss = (self.schedule.loss_weight(t, cfg.loss_weighting, cfg.snr_gamma) * per_cell).mean()
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            grad_norm = torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
            scaler.step(opt)
            scaler.update()
            ema.update(net, step, every=cfg.ema_every, last=step + 1 == cfg.steps)
            running += loss.detach()
            running_gn += grad_norm.detach()
            n_since += 1
            step += 1
            last = step == cfg.steps
            if step % cfg.log_every == 0 or last:
                if distributed:
                    dist.all_reduce(running)
                    running /= world
                row = {"step": step, "loss": float(running) / n_since,
                       "grad_norm": float(running_gn) / n_since, "lr": lr}
                running.zero_()
                running_gn.zero_()
                n_since = 0
                if on_eval is not None and rank == 0 and eval_every and step % eval_every == 0:
                    # monitoring (e.g. MMD of a small sample to held-out cells) with EMA weights
                    metrics, early = on_eval(step, lambda: ema.state_dict(net))
                    row.update(metrics)
                    early_stop = early_stop or early
                if rank == 0:
                    log.append(row)
                    if on_log is not None:
                        on_log(step, row)
            stop = should_stop is not None and should_stop()
            if early_stop and not last:
                break
            if distributed and should_stop is not None:  # all ranks stop at the same step
                flag = torch.tensor(float(stop), device=device)
                dist.all_reduce(flag, op=dist.ReduceOp.MAX)
                stop = bool(flag.item())
            periodic = cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and not last
            if on_checkpoint is not None and rank == 0 and (periodic or (stop and not last)):
                on_checkpoint(step, {**checkpoint_tensors(net, ema, opt, gen, dgen),
                                     "log": _log_tensor(log)})
            if stop and not last:
                stopped = True
                break
        net.eval()
        return TrainResult(model=net, ema_state=ema.state_dict(net), log=log, step=step,
                           stopped=stopped, early_stopped=early_stop)


def _log_tensor(log: list[dict]) -> torch.Tensor:
    """The log rows as a float64 tensor [rows, 4] (step, loss, grad_norm, lr)."""
    return torch.tensor([[r["step"], r["loss"], r["grad_norm"], r["lr"]] for r in log],
                        dtype=torch.float64).reshape(-1, 4)


def copy_with_state(net: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    """A copy of ``net`` carrying ``state`` (e.g. the EMA weights) for sampling."""
    twin = copy.deepcopy(net)
    twin.load_state_dict(state)
    return twin.eval()
