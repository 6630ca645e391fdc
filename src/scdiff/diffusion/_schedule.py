"""Noise schedules: a Gaussian diffusion (Ho et al. 2020; Nichol & Dhariwal 2021) or a
rectified flow (Liu et al. 2023; Lipman et al. 2023).

Both write a noisy cell as ``x_t = alpha_t x_0 + sigma_t eps`` over T integer timesteps:
the diffusion's ``alpha_t = sqrt(alpha_bar_t)``, ``sigma_t = sqrt(1 - alpha_bar_t)``; the
flow's straight path ``alpha_t = 1 - s``, ``sigma_t = s`` with ``s = (t + 1) / T``. So the
targets, the DDIM step and the multistep solvers (``_solvers``) are written once, in
``alpha`` and ``sigma``.

A plain object: it never holds the network. Coefficients are computed once in float64
with the papers' names and cast to the caller's dtype and device when used. Its
constructor arguments are its whole config and round-trip to JSON.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch

from scdiff._errors import InputError, arg

#: How the training loss weights the timesteps (:meth:`NoiseSchedule.loss_weight`).
LOSS_WEIGHTINGS = ("snr_cap", "min_snr", "none")
SCHEDULES = ("cosine", "linear", "flow")
PREDICTIONS = ("epsilon", "x0", "v", "flow")


def check_loss_weighting(weighting: str, gamma: float = 5.0) -> tuple[str, float]:
    """A valid (loss weighting, gamma) pair, or one clear error."""
    if weighting not in LOSS_WEIGHTINGS:
        raise InputError(f"{arg('loss_weighting', weighting)} needs to be one of "
                         f"{', '.join(LOSS_WEIGHTINGS)}.")
    if not (math.isfinite(gamma) and gamma > 0):
        raise InputError(f"{arg('snr_gamma', gamma)} needs to be a positive number (the SNR where "
                         "the weighting caps, e.g. 5).")
    return weighting, float(gamma)


ScheduleName = Literal["linear", "cosine", "flow"]
Prediction = Literal["epsilon", "x0", "v", "flow"]


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
    """Forward process q(x_t | x_0), the conversions between prediction targets, and the
    reverse steps.

    Parameters
    ----------
    num_timesteps
        Number of timesteps T.
    schedule
        ``"cosine"`` or ``"linear"`` (variance-preserving diffusion), or ``"flow"`` (the
        rectified flow's straight path from the cell to noise).
    prediction
        What the network predicts: ``"epsilon"`` (noise), ``"x0"``, ``"v"`` (Salimans & Ho
        2022), or ``"flow"``: the velocity ``eps - x_0`` of the straight path (with the
        ``"flow"`` schedule only, and it only with this).
    beta_start, beta_end
        Range of the linear schedule (ignored by the others).

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
        if schedule not in SCHEDULES:
            raise InputError(f"{arg('schedule', schedule)} needs to be one of {', '.join(SCHEDULES)}.")
        if prediction not in PREDICTIONS:
            raise InputError(f"{arg('prediction', prediction)} needs to be one of "
                             f"{', '.join(PREDICTIONS)}.")
        if (schedule == "flow") != (prediction == "flow"):
            raise InputError(f"the rectified flow pairs {arg('schedule', 'flow')} with "
                             f"{arg('prediction', 'flow')}; give both (or neither).")
        if num_timesteps < 2:
            raise InputError(f"{arg('num_timesteps', num_timesteps)} needs to be at least 2.")
        self.num_timesteps = int(num_timesteps)
        self.schedule = schedule
        self.prediction = prediction
        self.beta_start = float(beta_start)
        self.beta_end = float(beta_end)
        if schedule == "flow":
            s = np.arange(1, num_timesteps + 1, dtype=np.float64) / num_timesteps
            self.sqrt_alphas_cumprod, self.sqrt_one_minus_alphas_cumprod = 1.0 - s, s
            self.snr_values = (1.0 - s) ** 2 / s**2
        else:
            self.betas = (linear_betas(num_timesteps, beta_start, beta_end) if schedule == "linear"
                          else cosine_betas(num_timesteps))
            self.alphas_cumprod = np.cumprod(1.0 - self.betas)
            self.sqrt_alphas_cumprod = np.sqrt(self.alphas_cumprod)
            self.sqrt_one_minus_alphas_cumprod = np.sqrt(1.0 - self.alphas_cumprod)
            self.snr_values = self.alphas_cumprod / (1.0 - self.alphas_cumprod)  # float64, then cached
        # log(alpha / sigma): the time variable of the multistep solvers (Lu et al. 2022)
        with np.errstate(divide="ignore"):
            self.lambdas = np.log(self.sqrt_alphas_cumprod) - np.log(self.sqrt_one_minus_alphas_cumprod)
        self._cache: dict[tuple, torch.Tensor] = {}

    @property
    def variance_preserving(self) -> bool:
        return self.schedule != "flow"

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

    def _alpha_sigma(self, t: int) -> tuple[float, float]:
        """(alpha, sigma) at timestep ``t``; ``t = -1`` is the clean cell (1, 0)."""
        if t < 0:
            return 1.0, 0.0
        return float(self.sqrt_alphas_cumprod[t]), float(self.sqrt_one_minus_alphas_cumprod[t])

    def loss_weight(self, t: torch.Tensor, weighting: str, gamma: float) -> torch.Tensor:
        """Per-cell weight on the MSE of this ``prediction``'s target at timesteps ``t``.

        Every target's MSE is the x0 error times a factor of the SNR: ``1 + SNR`` for v,
        ``SNR`` for epsilon, 1 for x0, ``(1 + sqrt(SNR))^2`` for the flow's velocity. The
        weightings, as that x0 factor:

        - ``"none"``: the target's own (weight 1);
        - ``"snr_cap"``: the target's own, capped at its value at ``SNR = gamma`` (only
          the low-noise steps, which dominate the v, epsilon and velocity losses, count less);
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
        native = {"v": snr + 1.0, "epsilon": snr, "x0": torch.ones_like(snr),
                  "flow": (snr.sqrt() + 1.0) ** 2}[self.prediction]
        if weighting == "snr_cap" or self.prediction == "epsilon":
            capped = {"v": gamma + 1.0, "epsilon": gamma, "x0": 1.0,
                      "flow": (math.sqrt(gamma) + 1.0) ** 2}[self.prediction]
            return torch.clamp(capped / native, max=1.0)
        return torch.clamp(snr, max=gamma) / native

    # -- the forward process and targets -----------------------------------------------------
    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x_t = alpha_t x_0 + sigma_t eps: eq. (4) of Ho et al. (q_sample), or the flow's path."""
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
        if self.prediction == "flow":
            return noise - x0  # d x_t / ds along the straight path
        # v = sqrt(alpha_bar) eps - sqrt(1 - alpha_bar) x0 (Salimans & Ho 2022)
        return (
            self._coef("sqrt_alphas_cumprod", t, x0) * noise
            - self._coef("sqrt_one_minus_alphas_cumprod", t, x0) * x0
        )

    def mean_shift(self) -> tuple[np.ndarray, np.ndarray]:
        """``(a, b)`` per timestep: a network that models ``r = x_0 - mu`` (a cell's departure
        from a known mean ``mu``) sees ``x_t - a_t mu = alpha_t r + sigma_t eps`` and adds
        ``b_t mu`` to its output to give this ``prediction``'s target for ``x_0``.

        ``a_t = alpha_t``; ``b_t`` is 0 for epsilon (the noise does not move), 1 for x0,
        ``-sigma_t`` for v (``v = alpha eps - sigma x_0``) and -1 for the flow's velocity
        (``eps - x_0``).

        Examples
        --------
        >>> a, b = NoiseSchedule(4, "flow", "flow").mean_shift()
        >>> a.tolist(), b.tolist()
        ([0.75, 0.5, 0.25, 0.0], [-1.0, -1.0, -1.0, -1.0])
        """
        a = np.asarray(self.sqrt_alphas_cumprod, dtype=np.float64)
        if self.prediction == "v":
            return a, -np.asarray(self.sqrt_one_minus_alphas_cumprod, dtype=np.float64)
        value = {"epsilon": 0.0, "x0": 1.0, "flow": -1.0}[self.prediction]
        return a, np.full_like(a, value)

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
        elif self.prediction == "flow":
            x0 = (x_t - s * model_output) / (a + s)  # x_t = x0 + s v on the straight path
            eps = x0 + model_output
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
    def timesteps(self, num_steps: int, *, trailing: bool = False) -> list[int]:
        """Evenly spaced timesteps from T-1 down for a sampler of ``num_steps`` steps.

        By default the last one is 0 (DDIM's spacing: its last network call sees a cell
        all but clean). ``trailing`` (Lin et al. 2024): ``T - 1, T (1 - 1/n) - 1, ...``
        down to ``T / n - 1``, from where the last step goes straight into the clean cell,
        so every network call moves the cell (the spacing of the multistep solvers; what
        counts at 10 steps and fewer).
        """
        if not 1 <= num_steps <= self.num_timesteps:
            raise InputError(
                f"{arg('steps', num_steps)} needs to be between 1 and {self.num_timesteps} "
                "(the model's number of diffusion steps)."
            )
        if trailing:
            T = self.num_timesteps
            ts = np.round(T * (1.0 - np.arange(num_steps) / num_steps)).astype(int) - 1
        else:
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
        sigma = eta sqrt((1 - ab_prev)/(1 - ab_t)) sqrt(1 - ab_t/ab_prev). eta = 0 is DDIM
        (on the flow's straight path, an Euler step of its ODE); eta = 1 with every
        timestep is DDPM ancestral sampling (sigma^2 = posterior variance), which needs a
        variance-preserving schedule.
        """
        if eta == 0:
            alpha_prev, sigma_prev = self._alpha_sigma(t_prev)
            return alpha_prev * x0 + sigma_prev * eps
        if not self.variance_preserving:
            raise InputError(f"{arg('sampler', 'ddpm')} needs a diffusion schedule; a flow model "
                             f"samples with {arg('sampler', 'ddim')} or {arg('sampler', 'dpm++')}.")
        ab_t = float(self.alphas_cumprod[t])
        ab_prev = float(self.alphas_cumprod[t_prev]) if t_prev >= 0 else 1.0
        sigma = eta * math.sqrt((1 - ab_prev) / (1 - ab_t) * (1 - ab_t / ab_prev))
        dir_coef = math.sqrt(max(1.0 - ab_prev - sigma**2, 0.0))
        x_prev = math.sqrt(ab_prev) * x0 + dir_coef * eps
        if sigma > 0 and noise is not None:
            x_prev = x_prev + sigma * noise
        return x_prev
