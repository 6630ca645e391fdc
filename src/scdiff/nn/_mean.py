"""The mean of the cells of a condition, from its attributes: a structured (CPA-like)
model whose main effects add up by construction.

``mu(c) = b + W (sum_i e_i + sum_m r_m(d_m) * (1 + G sum_i e_i))``

with ``e_i`` the embeddings of the attributes no dose is paired with (the covariates: a
cell type, a cell line, a batch; and doses of their own, such as a score) and ``r_m(d_m)``
the encoding of each perturbation's dose (the drug's dose curve times its direction, zero
at dose 0, from its features where it has some). ``G`` (zero at first) lets the covariates
scale a response direction by direction: a cell line's sensitivity to what a drug does,
learned from its responses to other drugs that do the same, so that it carries over to a
drug never measured in that line. ``W`` maps to the network's space.

Fitted first, by least squares on the training conditions' mean cells
(:func:`scdiff.train.fit_mean`); the diffusion then models each cell's departure from its
condition's mean (:class:`~scdiff.nn.ConditionalMLP` with ``mean``), so that a condition
never measured gets this model's mean, and the network's learned departures on top.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from scdiff.nn._conditions import ConditionEmbedding
from scdiff.nn._features import FeatureEmbedding


class MeanModel(ConditionEmbedding):
    """A condition's mean cell from its codes and doses.

    Parameters
    ----------
    n_genes
        Output width (the network's space).
    n_categories, n_doses, width, dose_encoder, dose_pairs, slots, features, feature_noise
        As for :class:`~scdiff.nn.ConditionalMLP` (the conditions are read the same way,
        with parameters of this model's own).
    gain
        Whether the covariates scale each paired dose's encoding (``G`` above).

    Examples
    --------
    >>> mean = MeanModel(20, n_categories=[3, 4], n_doses=1, width=16, dose_encoder="sigmoid",
    ...                  dose_pairs=[1])
    >>> cats = torch.tensor([[0, 1], [2, 3]]); doses = torch.tensor([[0.5], [0.0]])
    >>> mean(cats, doses).shape
    torch.Size([2, 20])
    """

    def __init__(self, n_genes: int, n_categories: Sequence[int] = (), n_doses: int = 0, width: int = 256,
                 *, dose_encoder: str = "sigmoid", dose_pairs: Sequence[int] = (),
                 slots: Sequence[int] = (), features: Sequence[dict | None] = (),
                 feature_noise: float = 0.0, gain: bool = True) -> None:
        super().__init__()
        paired = {p for p in dose_pairs if p >= 0}  # a drug acts through its dose's encoding alone
        self._init_conditions(n_categories, n_doses, width, dose_encoder=dose_encoder,
                              dose_pairs=dose_pairs, slots=slots, features=features,
                              feature_noise=feature_noise, skip=sorted(paired))
        self.covariates = [i for i in range(len(self.n_categories)) if i not in paired]
        with torch.no_grad():  # a dropped attribute adds nothing until it is fitted
            for i in self.covariates:
                table = self.embeddings[i]
                (table.residual if isinstance(table, FeatureEmbedding) else table).weight[-1].zero_()
        self.gain = None
        if gain and self.covariates and paired:
            self.gain = nn.Linear(width, width)
            nn.init.zeros_(self.gain.weight)
            nn.init.zeros_(self.gain.bias)
        self.bias = nn.Parameter(torch.zeros(n_genes))
        self.project = nn.Linear(width, n_genes, bias=False)

    def forward(self, cats: torch.Tensor, doses: torch.Tensor) -> torch.Tensor:
        parts = self.attributes(cats, doses)
        n = len(self.n_categories)
        covariates = [parts[i] for i in self.covariates]
        terms = covariates + [parts[n + k] for k, p in enumerate(self.dose_pairs) if p < 0]
        responses = [parts[n + k] for k, p in enumerate(self.dose_pairs) if p >= 0]
        if responses:
            response = sum(responses)
            if self.gain is not None:
                response = response * (1 + self.gain(sum(covariates)))
            terms.append(response)
        if not terms:
            return self.bias.expand(len(cats), -1)
        return self.bias + self.project(sum(terms))
