"""What a training step minimises: the diffusion loss of the conditional network, or the
negative-binomial evidence bound of the latent space's autoencoder.

An objective takes the network being trained (its DDP or compiled wrapper), one
minibatch, the step's random stream and the autocast context, and returns the loss. The
trainer does the rest (optimizer, EMA, clipping, checkpoints) the same way for both.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from scdiff.diffusion import NoiseSchedule


def drop_conditions(
    cats: torch.Tensor, doses: torch.Tensor, null_codes: torch.Tensor, p: float,
    generator: torch.Generator, columns: tuple[list[int], list[int]] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace each attribute independently by its null token with probability ``p``.

    Independent dropout gives every subset of attributes an unconditional counterpart,
    which per-attribute guidance needs. ``columns``: the attribute of each code column and
    each dose column (an attribute of several slots, a set of drugs, is dropped whole);
    one column each if None.
    """
    if p <= 0:
        return cats, doses
    cat_of, dose_of = columns or (list(range(cats.shape[1])), list(range(doses.shape[1])))
    n_cat, n_dose = len(set(cat_of)), len(set(dose_of))
    # drawn where the generator lives: the CPU (bit-for-bit resumable) or the GPU (no copy)
    drop_c = torch.rand((cats.shape[0], n_cat), generator=generator, device=generator.device) < p
    drop_d = torch.rand((doses.shape[0], n_dose), generator=generator, device=generator.device) < p
    drop_c, drop_d = drop_c[:, cat_of].to(cats.device), drop_d[:, dose_of].to(doses.device)
    cats = torch.where(drop_c, null_codes.to(cats.device), cats)
    doses = torch.where(drop_d, torch.full_like(doses, float("nan")), doses)
    return cats, doses


class DiffusionObjective:
    """The weighted regression of the schedule's target on ``(x_0, cats, doses)`` batches,
    with classifier-free condition dropout per attribute (``p_uncond``)."""

    def __init__(self, schedule: NoiseSchedule, *, p_uncond: float = 0.1,
                 loss_weighting: str = "snr_cap", snr_gamma: float = 5.0) -> None:
        self.schedule, self.p_uncond = schedule, p_uncond
        self.loss_weighting, self.snr_gamma = loss_weighting, snr_gamma
        self.null_codes: torch.Tensor | None = None
        self.columns: tuple[list[int], list[int]] | None = None

    def prepare(self, net: nn.Module, device: torch.device) -> None:
        """Read what the objective needs of the network (its null tokens), once."""
        self.null_codes = net.null_codes.to(device)  # type: ignore[attr-defined]
        self.columns = (net.cat_columns, net.dose_columns)  # type: ignore[attr-defined]

    def __call__(self, net: nn.Module, batch, gen: torch.Generator,
                 amp: contextlib.AbstractContextManager, step: int) -> torch.Tensor:
        x0, cats, doses = batch
        device = x0.device
        cats, doses = drop_conditions(cats, doses, self.null_codes, self.p_uncond, gen, self.columns)
        t = torch.randint(0, self.schedule.num_timesteps, (x0.shape[0],), generator=gen,
                          device=gen.device).to(device)
        noise = torch.randn(x0.shape, generator=gen, device=gen.device).to(device)
        x_t = self.schedule.add_noise(x0, noise, t)
        target = self.schedule.target(x0, noise, t)
        with amp:
            out = net(x_t, t, cats, doses)
        per_cell = ((out.float() - target) ** 2).mean(dim=1)
        return (self.schedule.loss_weight(t, self.loss_weighting, self.snr_gamma) * per_cell).mean()


def nb_sparse_log_likelihood(log_mean: torch.Tensor, log_theta: torch.Tensor, rows: torch.Tensor,
                             cols: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Each cell's negative-binomial log-likelihood summed over genes, from its non-zero
    counts only (``rows``, ``cols``, ``counts``: the batch's counts as coordinates).

    ``log_mean`` [cells, genes] is the log of the expected counts. A zero count adds only
    ``theta (log theta - log(theta + mu)) = -theta softplus(log mu - log theta)``, computed
    densely (one pass over the cells x genes, the costly part for wide panels); the
    log-gamma terms are needed only where a count is not zero (most are zeros). Equal to the
    sum of :func:`scdiff.nn.nb_log_likelihood` over the dense matrix.
    """
    log_mean = log_mean.float()
    lt = log_theta.float()
    theta = lt.exp()
    dense = -(F.softplus(log_mean - lt) * theta).sum(dim=1)
    k, lt_k, m = counts.float(), lt[cols], log_mean[rows, cols]
    tk = theta[cols]
    # a non-zero count's own terms, and its log(theta + mu) recomputed from the gathered mean
    log_theta_mu = lt_k + F.softplus(m - lt_k)
    terms = (torch.lgamma(k + tk) - torch.lgamma(tk) - torch.lgamma(k + 1.0)
             + k * (m - log_theta_mu))
    return dense + torch.zeros_like(dense).index_add_(0, rows, terms)


class CountObjective:
    """The negative evidence bound of a :class:`~scdiff.nn.CountAutoencoder` per gene:
    ``(NB negative log-likelihood of every gene's counts + kl_weight * KL) / genes``, on
    ``(x, library size, rows, cols, counts)`` batches. The KL weight rises linearly over the
    first ``kl_warmup`` steps (the decoder learns before the latent is pulled together)."""

    def __init__(self, *, kl_weight: float = 0.1, kl_warmup: int = 0, target_sum: float = 1e4) -> None:
        self.kl_weight, self.kl_warmup, self.target_sum = kl_weight, kl_warmup, target_sum

    def prepare(self, net: nn.Module, device: torch.device) -> None:
        self.latent_dim = net.latent_dim  # type: ignore[attr-defined]

    def __call__(self, net: nn.Module, batch, gen: torch.Generator,
                 amp: contextlib.AbstractContextManager, step: int) -> torch.Tensor:
        x, size, rows, cols, counts = batch
        eps = torch.randn((x.shape[0], self.latent_dim), generator=gen, device=gen.device).to(x.device)
        with amp:
            mu, logvar, log_rate, log_theta = net(x, eps)
        mu, logvar = mu.float(), logvar.float()
        log_mean = log_rate.float() + torch.log(size.float() / self.target_sum)[:, None]
        lik = nb_sparse_log_likelihood(log_mean, log_theta, rows, cols, counts)
        kl = 0.5 * (mu * mu + logvar.exp() - 1.0 - logvar).sum(dim=1)
        warm = min(1.0, (step + 1) / self.kl_warmup) if self.kl_warmup else 1.0
        return ((-lik + self.kl_weight * warm * kl) / log_mean.shape[1]).mean()

