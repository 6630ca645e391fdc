"""Watch quality rise during training: every N steps, generate a small sample with the EMA
weights and measure its MMD to held-out cells (in a PCA space of those cells), beside the
MMD between two halves of the held-out cells themselves (the floor)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from scdiff.diffusion import Guidance, NoiseSchedule, sample_loop
from scdiff.metrics import median_bandwidth, mmd_rbf
from scdiff.model._setup import build_network

#: Held-out cells per half that the monitor compares (the MMD's cost is quadratic in them).
MONITOR_CELLS = 512


class SampleMonitor:
    """Callable for :meth:`scdiff.train.Trainer.fit`'s ``on_eval``.

    The held-out cells are split in halves A and B. Each evaluation generates cells
    with A's conditions (same noise every time, so successive values compare) and
    reports ``mmd`` (generated vs B) and ``mmd_floor`` (A vs B, fixed), with the kernel
    bandwidth of :func:`scdiff.metrics.median_bandwidth` on A and B together, fixed so
    that values compare. With ``patience``, training stops once ``mmd`` has not improved
    for that many evaluations in a row; :meth:`state` and :meth:`load_state` carry that
    count through a checkpoint.
    """

    def __init__(self, network_config: dict, schedule: NoiseSchedule, x: np.ndarray, codes: np.ndarray,
                 doses: np.ndarray, attributes: tuple[str, ...], *, n_pcs: int = 20, steps: int = 20,
                 patience: int | None = None, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        idx = rng.permutation(len(x))[: MONITOR_CELLS * 2]
        half = len(idx) // 2
        self.a, self.b = idx[:half], idx[half:]
        centre = x[idx].mean(0)
        _, _, vt = np.linalg.svd(x[idx] - centre, full_matrices=False)
        self.centre, self.components = centre, vt[:n_pcs].T
        self.target = self._project(x[self.b])
        a_proj = self._project(x[self.a])
        self.sigma = median_bandwidth(np.vstack([a_proj, self.target]), seed=seed)
        self.floor = mmd_rbf(a_proj, self.target, sigma=self.sigma)
        self.codes, self.doses = codes[self.a], doses[self.a]
        self.net = build_network(network_config, schedule)  # built before training seeds its RNG
        self.schedule, self.steps, self.patience, self.seed = schedule, steps, patience, seed
        self.guidance = Guidance(attributes, 1.0)
        self.best, self.bad = float("inf"), 0

    def _project(self, x: np.ndarray) -> np.ndarray:
        return (x - self.centre) @ self.components

    def state(self) -> dict:
        """The early-stopping state (best value so far, evaluations without improvement)."""
        return {"best": self.best, "bad": self.bad}

    def load_state(self, state: dict) -> None:
        self.best, self.bad = float(state["best"]), int(state["bad"])

    @torch.no_grad()
    def __call__(self, step: int, ema_state: Callable[[], dict[str, torch.Tensor]]) -> tuple[dict, bool]:
        state = ema_state()
        device = next(iter(state.values())).device
        self.net.load_state_dict(state)
        net = self.net.to(device).eval()
        gen = torch.Generator(device=device).manual_seed(self.seed)
        z = sample_loop(net, self.schedule, torch.from_numpy(self.codes).to(device),
                        torch.from_numpy(self.doses).to(device), guidance=self.guidance,
                        steps=self.steps, eta=0.0, generator=gen)
        value = mmd_rbf(self._project(z.float().cpu().numpy()), self.target, sigma=self.sigma)
        if value < self.best * (1 - 1e-3):
            self.best, self.bad = value, 0
        else:
            self.bad += 1
        stop = self.patience is not None and self.bad >= self.patience
        return {"mmd": float(value), "mmd_floor": float(self.floor)}, stop
