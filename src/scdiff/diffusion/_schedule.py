"""Noise schedule of a Gaussian diffusion (Ho et al. 2020; Nichol & Dhariwal 2021).

A plain object: it never holds the network. Coefficients are computed once in
float64 with the papers' names and cast to the caller's dtype and device when
used. Its constructor arguments are its whole config and round-trip to JSON.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch

from scdiff._errors import InputError

#: How the training loss weights the timesteps (:meth:`NoiseSchedule.loss_weight`).
LOSS_WEIGHTINGS = ("snr_cap", "min_snr", "none")


def check_loss_weighting(weighting: str, gamma: float = 5.0) -> tuple[str, float]:
    """A valid (loss weighting, gamma) pair, or one clear error."""
    if weighting not in LOSS_WEIGHTINGS:
        raise InputError(f"loss_weighting = {weighting!r} needs to be one of {', '.join(LOSS_WEIGHTINGS)}.")
    if not (math.isfinite(gamma) and gamma > 0):
        raise InputError(f"snr_gamma = {gamma} needs to be a positive number (the SNR where the "
                         "weighting caps, e.g. 5).")
    return weighting, float(gamma)

ScheduleName = Literal["linear", "cosine"]
Prediction = Literal["epsilon", "x0", "v"]


def linear_betas(num_timesteps: int, beta_start: float, beta_end: float) -> np.ndarray:
    """Betas spaced linearly, rescaled so any T behaves like T=1000 (Ho et al. 2020)."""
    scale = 1000.0 / num_timesteps
    return np.linspace(scale * beta_start, scale * beta_end, num_timesteps, dtype=np.float64)


def cosine_betas(num_timesteps: int, s: float = 0.008, max_beta: float = 0.999) -> np.ndarray:
    """Betas of the cosine schedule, eq. (17) of Nichol & Dhariwal 2021."""

    def alpha_bar(t: float) -> float:
        return math.cos((t + s) / (1 + s) * math.pi / 2) ** 2

    betas = [
        min(1 - alpha_bar((i + 1) / num_timesteps) / alpha_bar(i / num_timesteps), max_beta)
        for i in range(num_timesteps)
    ]
    return np.asarray(betas, dtype=np.float64)


class NoiseSchedule:
    """Forward process q(x_t | x_0) and the conversions between prediction targets.

    Parameters
    ----------
    num_timesteps
        Number of diffusion steps T.
    schedule
        ``"cosine"`` or ``"linear"``.
    prediction
        What the network predicts: ``"epsilon"`` (noise), ``"x0"`` or ``"v"``.
    beta_start, beta_end
        Range of the linear schedule (ignored by the cosine one).

    Examples
    --------
    >>> import torch
    >>> sched = NoiseSchedule(1000, "linear")
    >>> x0 = torch.zeros(4, 3); noise = torch.ones(4, 3); t = torch.tensor([0, 10, 100, 999])
    >>> sched.add_noise(x0, noise, t).shape
    torch.Size([4, 3])
    """

    def __init__(
        self,
        num_timesteps: int = 1000,
        schedule: ScheduleName = "cosine",
        prediction: Prediction = "epsilon",
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
    ) -> None:
        if schedule not in ("linear", "cosine"):
            raise InputError(f"schedule = {schedule!r} needs to be one of 'linear', 'cosine'.")
        if prediction not in ("epsilon", "x0", "v"):
            raise InputError(f"prediction = {prediction!r} needs to be one of 'epsilon', 'x0', 'v'.")
        if num_timesteps < 2:
            raise InputError(f"num_timesteps = {num_timesteps} needs to be at least 2.")
        self.num_timesteps = int(num_timesteps)
        self.schedule = schedule
        self.prediction = prediction
        self.beta_start = float(beta_start)
        self.beta_end = float(beta_end)

        if schedule == "linear":
            betas = linear_betas(num_timesteps, beta_start, beta_end)
        else:
            betas = cosine_betas(num_timesteps)
        self.betas = betas
        self.alphas = 1.0 - betas
        self.alphas_cumprod = np.cumprod(self.alphas)
        self.sqrt_alphas_cumprod = np.sqrt(self.alphas_cumprod)
        self.sqrt_one_minus_alphas_cumprod = np.sqrt(1.0 - self.alphas_cumprod)
        self.snr_values = self.alphas_cumprod / (1.0 - self.alphas_cumprod)  # float64, then cached
        self._cache: dict[tuple, torch.Tensor] = {}

    # -- config -----------------------------------------------------------------------------
    def to_config(self) -> dict:
        return {
            "num_timesteps": self.num_timesteps,
            "schedule": self.schedule,
            "prediction": self.prediction,
            "beta_start": self.beta_start,
            "beta_end": self.beta_end,
        }

    @classmethod
    def from_config(cls, config: dict) -> NoiseSchedule:
        return cls(**config)

    # -- helpers ----------------------------------------------------------------------------
    def _coef(self, name: str, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """Per-timestep coefficient ``name`` gathered at ``t``, broadcast to ``like``'s batch."""
        key = (name, like.device, like.dtype)
        table = self._cache.get(key)
        if table is None:
            table = torch.as_tensor(getattr(self, name), dtype=like.dtype, device=like.device)
            self._cache[key] = table
        out = table[t.long()]
        return out.view(-1, *([1] * (like.ndim - 1)))

    def loss_weight(self, t: torch.Tensor, weighting: str, gamma: float) -> torch.Tensor:
        """Per-cell weight on the MSE of this ``prediction``'s target at timesteps ``t``.

        Every target's MSE is the x0 error times a factor of the SNR: ``1 + SNR`` for v,
        ``SNR`` for epsilon, 1 for x0. The weightings, as that x0 factor:

        - ``"none"``: the target's own (weight 1);
        - ``"snr_cap"``: the target's own, capped at its value at ``SNR = gamma`` (only
          the low-noise steps, which dominate the v and epsilon losses, count less);
        - ``"min_snr"``: ``min(SNR, gamma)`` (Hang et al. 2023, Min-SNR-gamma), which
          also weights the high-noise steps down (as SNR).

        For epsilon the two are the same. The weights of all T timesteps are computed once
        per (weighting, gamma, device) and gathered at ``t``: a training step only indexes.
        """
        key = ("loss_weight", weighting, float(gamma), t.device)
        table = self._cache.get(key)
        if table is None:
            table = self._loss_weight_table(*check_loss_weighting(weighting, gamma)).to(t.device)
            self._cache[key] = table
        return table[t.long()]

    def _loss_weight_table(self, weighting: str, gamma: float) -> torch.Tensor:
        """:meth:`loss_weight` at every timestep (float32, on the CPU)."""
        snr = torch.as_tensor(self.snr_values, dtype=torch.float32)
        if weighting == "none":
            return torch.ones_like(snr)
        native = {"v": snr + 1.0, "epsilon": snr, "x0": torch.ones_like(snr)}[self.prediction]
        if weighting == "snr_cap" or self.prediction == "epsilon":
            capped = {"v": gamma + 1.0, "epsilon": gamma, "x0": 1.0}[self.prediction]
            return torch.clamp(capped / native, max=1.0)
        return torch.clamp(snr, max=gamma) / native

    # -- the forward process and targets -----------------------------------------------------
    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, eq. (4) of Ho et al. (q_sample)."""
        return (
            self._coef("sqrt_alphas_cumprod", t, x0) * x0
            + self._coef("sqrt_one_minus_alphas_cumprod", t, x0) * noise
        )


    def target(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """What the network is trained to output for this ``prediction``."""
        if self.prediction == "epsilon":
            return noise
        if self.prediction == "x0":
            return x0
        # v = sqrt(alpha_bar) eps - sqrt(1 - alpha_bar) x0 (Salimans & Ho 2022)
        return (
            self._coef("sqrt_alphas_cumprod", t, x0) * noise
            - self._coef("sqrt_one_minus_alphas_cumprod", t, x0) * x0
        )

    def split_prediction(
        self, model_output: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (predicted x_0, predicted eps) from the network's output."""
        a = self._coef("sqrt_alphas_cumprod", t, x_t)
        s = self._coef("sqrt_one_minus_alphas_cumprod", t, x_t)
        if self.prediction == "epsilon":
            eps = model_output
            x0 = (x_t - s * eps) / a  # "predicted x_0", eq. (15) of Ho et al.
        elif self.prediction == "x0":
            x0 = model_output
            eps = self.eps_from_x0(x0, x_t, t)
        else:
            x0 = a * x_t - s * model_output
            eps = s * x_t + a * model_output
        return x0, eps

    def eps_from_x0(self, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The noise that, with ``x0``, makes ``x_t``: eq. (4) of Ho et al. solved for eps."""
        a = self._coef("sqrt_alphas_cumprod", t, x_t)
        s = self._coef("sqrt_one_minus_alphas_cumprod", t, x_t)
        return (x_t - a * x0) / s

    # -- the reverse process ------------------------------------------------------------------
    def timesteps(self, num_steps: int) -> list[int]:
        """Evenly spaced timesteps from T-1 down to 0 for a sampler of ``num_steps`` steps."""
        if not 1 <= num_steps <= self.num_timesteps:
            raise InputError(
                f"steps = {num_steps} needs to be between 1 and {self.num_timesteps} "
                "(the model's number of diffusion steps)."
            )
        ts = np.linspace(0, self.num_timesteps - 1, num_steps).round().astype(int)
        return sorted(set(ts.tolist()), reverse=True)

    def step(
        self,
        x0: torch.Tensor,
        eps: torch.Tensor,
        x_t: torch.Tensor,
        t: int,
        t_prev: int,
        eta: float,
        noise: torch.Tensor | None,
    ) -> torch.Tensor:
        """One reverse step from t to t_prev < t (t_prev = -1 means "to x_0").

        Generalised DDIM update, eq. (12) of Song et al. 2021:
        x_prev = sqrt(ab_prev) x0 + sqrt(1 - ab_prev - sigma^2) eps + sigma z, with
        sigma = eta sqrt((1 - ab_prev)/(1 - ab_t)) sqrt(1 - ab_t/ab_prev). eta = 0 is DDIM;
        eta = 1 with every timestep is DDPM ancestral sampling (sigma^2 = posterior variance).
        """
        ab_t = float(self.alphas_cumprod[t])
        ab_prev = float(self.alphas_cumprod[t_prev]) if t_prev >= 0 else 1.0
        sigma = eta * math.sqrt((1 - ab_prev) / (1 - ab_t) * (1 - ab_t / ab_prev))
        dir_coef = math.sqrt(max(1.0 - ab_prev - sigma**2, 0.0))
        x_prev = math.sqrt(ab_prev) * x0 + dir_coef * eps
        if sigma > 0 and noise is not None:
            x_prev = x_prev + sigma * noise
        return x_prev
