"""Fitting a :class:`~scdiff.nn.MeanModel`: least squares on the training conditions' mean
cells, before the diffusion (which then models each cell's departure from that mean).

The cells are first reduced to one mean per distinct condition (codes and doses), weighted
by its number of cells: the same least-squares fit as on the cells themselves, at the cost of
a few hundred rows for a designed experiment. Every step is on all of them (or a draw of
``batch`` of them where there are more), so the fit is quick and the same on every run of a
seed. How long and how fast were measured on the drug screens of ``bench.screen``: the
held-out conditions keep improving after the loss has flattened, until about 4,000 steps at
this learning rate (docs/perturbation.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

if TYPE_CHECKING:
    from scdiff.nn import MeanModel

#: Steps of the fit and their learning rate (Adam; warm-up, then constant, then a cosine
#: over the last fifth).
MEAN_STEPS = 5000
MEAN_LR = 1e-2
#: Conditions per step where there are more (a draw, weighted by their cells).
MEAN_BATCH = 4096
#: The ridge penalty on the covariates' gain (``G`` of :class:`~scdiff.nn.MeanModel`): a
#: covariate scales a response direction only as far as the drugs measured in it demand.
#: Without it, in a design of two drugs a cell type's gain, learned from the one drug it
#: saw, scaled the other drug's response at random (measured: docs/perturbation.md).
MEAN_GAIN_L2 = 1e-2
#: The ridge penalty on a measured drug's own slope and midpoint, beyond its features'
#: curve: its doses rarely pin them (a rise between two measured doses fits about as well
#: anywhere between them), and unpenalised they drifted where the features' curve was right.
MEAN_CURVE_L2 = 1e-2


@dataclass
class ConditionMeans:
    """One row per distinct condition of the training cells: its codes, doses, mean cell
    and number of cells.

    Examples
    --------
    >>> x = torch.tensor([[1.0], [3.0], [5.0]]); cats = torch.tensor([[0], [0], [1]])
    >>> doses = np.array([[0.5], [0.5], [np.nan]], dtype=np.float32)
    >>> groups = ConditionMeans.of_blocks([x.numpy()], cats.numpy(), doses)
    >>> groups.means.ravel().tolist(), groups.counts.tolist(), groups.doses.ravel().tolist()
    ([2.0, 5.0], [2.0, 1.0], [0.5, nan])
    """

    cats: torch.Tensor  # int64 [G, K]
    doses: torch.Tensor  # float32 [G, D]
    means: torch.Tensor  # float32 [G, dim]
    counts: torch.Tensor  # float32 [G]

    def __len__(self) -> int:
        return len(self.counts)

    @classmethod
    def of_blocks(cls, blocks, codes: np.ndarray, doses: np.ndarray) -> ConditionMeans:
        """The means of cells given block by block (rows in the order of ``codes``)."""
        # a missing dose (a set's unused slot) is NaN, which np.unique never finds equal
        key = np.concatenate([codes.astype(np.float64), np.nan_to_num(doses.astype(np.float64), nan=-np.inf)],
                             axis=1)
        uniq, first, group = np.unique(key, axis=0, return_index=True, return_inverse=True)
        group = group.ravel()
        counts = np.bincount(group, minlength=len(uniq)).astype(np.float64)
        sums, start = None, 0
        for block in blocks:
            rows = group[start:start + len(block)]
            member = sp.csr_matrix((np.ones(len(rows)), (rows, np.arange(len(rows)))),
                                   shape=(len(uniq), len(rows)))
            part = member @ np.asarray(block, dtype=np.float64)
            sums = part if sums is None else sums + part
            start += len(block)
        if start != len(group):
            raise ValueError(f"the blocks hold {start} cells for {len(group)} conditions.")
        return cls(torch.from_numpy(codes[first].astype(np.int64)),
                   torch.from_numpy(doses[first].astype(np.float32)),
                   torch.from_numpy((sums / counts[:, None]).astype(np.float32)),
                   torch.from_numpy(counts.astype(np.float32)))


def fit_mean(mean: MeanModel, groups: ConditionMeans, *, steps: int = MEAN_STEPS, lr: float = MEAN_LR,
             batch: int = MEAN_BATCH, seed: int = 0, device: torch.device | str = "cpu",
             gain_l2: float = MEAN_GAIN_L2, curve_l2: float = MEAN_CURVE_L2, on_step=None) -> list[float]:
    """Fit ``mean`` (a :class:`~scdiff.nn.MeanModel`: codes, doses -> mean cell) to ``groups``
    by weighted least squares, with its ridge penalties (:meth:`~scdiff.nn.MeanModel.penalty`):
    ``gain_l2`` on the covariates' gain, ``curve_l2`` on the measured drugs' own dose-curve
    slope and midpoint.

    Each step draws the model's training noise (feature noise, dropped residuals) anew, from
    torch's global generator, which the fit seeds with ``seed``.
    Returns the loss every 100 steps (the mean squared error per value, weighted by cells,
    with the model in evaluation mode). ``on_step(step)`` is called after each step.
    """
    device = torch.device(device)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    mean.to(device).train()
    cats, doses = groups.cats.to(device), groups.doses.to(device)
    means, weights = groups.means.to(device), groups.counts.to(device) / groups.counts.sum()
    with torch.no_grad():  # the bias starts at the cells' mean: the rest learns departures
        mean.bias.copy_((weights[:, None] * means).sum(0))
    opt = torch.optim.Adam([p for p in mean.parameters() if p.requires_grad], lr=lr)
    warmup, settle = min(100, steps // 10), max(1, steps // 5)
    losses = []
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr * _schedule(step, steps, warmup, settle)
        if len(groups) > batch:
            rows = torch.multinomial(weights.cpu(), batch, replacement=True, generator=gen).to(device)
            loss = ((mean(cats[rows], doses[rows]) - means[rows]) ** 2).mean()
        else:
            loss = (((mean(cats, doses) - means) ** 2).mean(1) * weights).sum()
        loss = loss + mean.penalty(gain_l2=gain_l2, curve_l2=curve_l2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 100 == 99 or step == steps - 1:
            losses.append(mean_loss(mean, groups, device))
            mean.train()
        if on_step is not None:
            on_step(step + 1)
    mean.eval()
    return losses


def _schedule(step: int, steps: int, warmup: int, settle: int) -> float:
    """The learning rate's factor: a linear warm-up, 1, then a cosine to 0.1 over ``settle``."""
    if step < warmup:
        return (step + 1) / warmup
    left = steps - step
    if left > settle:
        return 1.0
    return 0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * (settle - left) / settle))


@torch.no_grad()
def mean_loss(mean: nn.Module, groups: ConditionMeans, device: torch.device | str = "cpu") -> float:
    """The weighted mean squared error of ``mean`` on ``groups`` (evaluation mode)."""
    mean.eval()
    weights = groups.counts / groups.counts.sum()
    out = torch.cat([mean(groups.cats[a:a + MEAN_BATCH].to(device), groups.doses[a:a + MEAN_BATCH].to(device)
                          ).cpu() for a in range(0, len(groups), MEAN_BATCH)])
    return float((((out - groups.means) ** 2).mean(1) * weights).sum())
