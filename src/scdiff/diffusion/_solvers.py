"""UniPC: the multistep solver with a free corrector (Zhao et al. 2023).

In data prediction with ``B(h) = e^-h - 1`` (their "bh2"), UniPC's second-order predictor
is DPM-Solver++(2M) step for step; its corrector then refines each new sample with the
x_0 the network predicts there, which the next step needs anyway, so it costs no network
call. The time variable is ``lambda = log(alpha / sigma)`` (:attr:`NoiseSchedule.lambdas`).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from scdiff.diffusion._schedule import NoiseSchedule


class UniPC:
    """The state of one UniPC run: the x_0 predicted at the last ``order`` timesteps and
    the sample the last step started from.

    ``step(x0, x, t, t_prev)`` takes the x_0 predicted at the sample ``x`` of timestep
    ``t`` and returns the sample at ``t_prev`` (``-1``: the clean cell, a first-order
    step). ``corrector=False`` leaves the predictor alone: DPM-Solver++(2M).
    """

    def __init__(self, schedule: NoiseSchedule, *, order: int = 2, corrector: bool = True) -> None:
        self.schedule, self.order, self.corrector = schedule, order, corrector
        self.history: list[tuple[torch.Tensor, int]] = []  # (x_0 predicted, its timestep)
        self.last: tuple[torch.Tensor, int] | None = None  # (sample the last step began at, order)

    def _lambda(self, t: int) -> float:
        return math.inf if t < 0 else float(self.schedule.lambdas[t])

    def _usable(self, order: int) -> int:
        """The order the history allows: past x_0 at finite lambda (not the flow's pure noise)."""
        usable = 1
        while usable < min(order, len(self.history)) and math.isfinite(
                self._lambda(self.history[-(usable + 1)][1])):
            usable += 1
        return usable

    def _update(self, x: torch.Tensor, t: int, order: int, m_t: torch.Tensor | None) -> torch.Tensor:
        """From ``x`` at the newest history timestep to ``t``: the predictor, or with the x_0
        predicted at ``t`` (``m_t``) the corrector (their Algorithms 2 and 1, ``B(h) = e^-h - 1``)."""
        m0, s0 = self.history[-1]
        alpha_t, sigma_t = self.schedule._alpha_sigma(t)
        sigma_s = self.schedule._alpha_sigma(s0)[1]
        lam_s0 = self._lambda(s0)
        h = self._lambda(t) - lam_s0
        rks, d1s = [], []
        for i in range(1, order):
            m_i, s_i = self.history[-(i + 1)]
            rks.append((self._lambda(s_i) - lam_s0) / h)
            d1s.append((m_i - m0) / rks[-1])
        rks.append(1.0)
        hh = -h
        h_phi_1 = math.expm1(hh)  # e^-h - 1
        b_h = h_phi_1
        rows, b = [], []
        h_phi_k, factorial = h_phi_1 / hh - 1.0, 1
        for i in range(1, order + 1):
            rows.append([r ** (i - 1) for r in rks])
            b.append(h_phi_k * factorial / b_h)
            factorial *= i + 1
            h_phi_k = h_phi_k / hh - 1.0 / factorial
        x_next = (sigma_t / sigma_s) * x - alpha_t * h_phi_1 * m0
        if m_t is None:  # the predictor: order 2 weighs the previous x_0 with 1/2
            if order == 1:
                return x_next
            return x_next - alpha_t * b_h * 0.5 * d1s[0]
        rhos = [0.5] if order == 1 else np.linalg.solve(np.array(rows), np.array(b)).tolist()
        correction = rhos[-1] * (m_t - m0)
        for rho, d in zip(rhos[:-1], d1s, strict=True):
            correction = correction + rho * d
        return x_next - alpha_t * b_h * correction

    def step(self, x0: torch.Tensor, x: torch.Tensor, t: int, t_prev: int) -> torch.Tensor:
        if self.corrector and self.last is not None:
            x = self._update(self.last[0], t, self.last[1], x0)
        self.history = [*self.history[-(self.order - 1):], (x0, t)] if self.order > 1 else [(x0, t)]
        if t_prev < 0:
            return x0  # into the clean cell: the first-order step lands on the prediction
        order = self._usable(self.order)
        self.last = (x, order)
        return self._update(x, t_prev, order, None)
