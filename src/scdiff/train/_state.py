"""What training carries from step to step and across an interruption: the EMA of the
weights, the checkpoint's tensors (weights, optimizer, random streams), the result."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from scdiff._seeds import resume_seed


@dataclass
class TrainResult:
    model: nn.Module  # raw weights, trained
    ema_state: dict[str, torch.Tensor]
    log: list[dict]
    step: int = 0  # steps done (less than config.steps when stopped early)
    stopped: bool = False


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
    s = resume_seed(seed, rank, step)
    torch.manual_seed(s)  # the CPU and every CUDA device: the network's dropout
    gen.manual_seed(s)
    if device_gen is not gen:
        device_gen.manual_seed(s + 1)


def copy_with_state(net: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    """A copy of ``net`` carrying ``state`` (e.g. the EMA weights) for sampling."""
    twin = copy.deepcopy(net)
    twin.load_state_dict(state)
    return twin.eval()
