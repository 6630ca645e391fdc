"""The mean of the cells of a condition, from its attributes: a structured (CPA-like)
model whose main effects add up by construction.

``mu(c) = b + W (sum_i e_i + sum_m r_m(d_m) * (1 + G sum_i e_i) + q_S(d))``

with ``e_i`` the embeddings of the attributes no dose is paired with (the covariates: a
cell type, a cell line, a batch; and doses of their own, such as a score) and ``r_m(d_m)``
the encoding of each perturbation's dose (the drug's dose curve times its direction, zero
at dose 0, from its features where it has some). ``G`` (zero at first) lets the covariates
scale a response direction by direction: a cell line's sensitivity to what a drug does,
learned from its responses to other drugs that do the same, so that it carries over to a
drug never measured in that line. ``q_S`` is the interaction of a set measured in training
(a drug pair): its own strength along one direction shared by the measured sets, times the
product of its members' dose curves; a set never measured has none, so that its members'
effects add up, and the measured pairs' interactions are not taken for their members' own
effects. ``W`` maps to the network's space.

Fitted first, by least squares on the training conditions' mean cells
(:func:`scdiff.train.fit_mean`); the diffusion then models each cell's departure from its
condition's mean (:class:`~scdiff.nn.ConditionalMLP` with ``mean``), so that a condition
never measured gets this model's mean, and the network's learned departures on top.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from scdiff.nn._conditions import ConditionEmbedding
from scdiff.nn._dose import DoseEncoder
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
    sets
        Per set attribute (its index among the categorical attributes, as an int or a
        string), the sets of two or more members measured in training, as lists of codes:
        each gets an interaction (``q_S`` above).

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
                 feature_noise: float = 0.0, gain: bool = True,
                 sets: Mapping[int | str, Sequence[Sequence[int]]] | None = None) -> None:
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
        # each measured set of a set attribute (a drug pair) gets an interaction of its own
        self.interactions = nn.ModuleDict()
        for key, members in sorted((sets or {}).items(), key=lambda kv: int(kv[0])):
            i = int(key)
            if members:
                codes = torch.full((len(members), self.slots[i]), self.n_categories[i], dtype=torch.long)
                for row, member in enumerate(members):
                    codes[row, :len(member)] = torch.as_tensor(member)
                self.interactions[str(i)] = SetInteractions(self._set_keys(codes, i), width)

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
        for key in self.interactions:
            terms.append(self._interaction(int(key), cats, doses))
        if not terms:
            return self.bias.expand(len(cats), -1)
        return self.bias + self.project(sum(terms))

    def penalty(self, *, gain_l2: float, curve_l2: float) -> torch.Tensor | float:
        """The fit's ridge penalties: ``gain_l2`` on the covariates' gain ``G``, ``curve_l2``
        on the measured drugs' own slope and midpoint (where their curves come from features)."""
        out = 0.0
        if self.gain is not None and gain_l2 > 0:
            out = out + gain_l2 * sum((p ** 2).sum() for p in self.gain.parameters())
        if curve_l2 > 0:
            for enc in self.dose_encoders:
                residuals = enc.curve_residuals if isinstance(enc, DoseEncoder) else None  # skipped: Identity
                if residuals is not None:
                    out = out + curve_l2 * (residuals ** 2).sum()
        return out

    def _set_keys(self, codes: torch.Tensor, i: int) -> torch.Tensor:
        """One integer per row for attribute ``i``'s set of codes: the same for any order of
        its members (the null code pads a smaller set)."""
        base = self.n_categories[i] + 1
        powers = base ** torch.arange(codes.shape[1], device=codes.device)
        return (codes.sort(dim=1).values * powers).sum(1)

    def _interaction(self, i: int, cats: torch.Tensor, doses: torch.Tensor) -> torch.Tensor:
        """The measured sets' interactions, each scaled by the product of its members' dose
        curves (zero where a member has dose 0; with a dose encoder that has no curve, one
        wherever every member is dosed); zero for a set never measured."""
        start = sum(self.slots[:i])
        codes = cats[:, start:start + self.slots[i]]
        member = codes != self.n_categories[i]
        scale = torch.ones(len(cats), device=cats.device)
        d = self.dose_pairs.index(i)
        enc, table = self.dose_encoders[d], self.embeddings[i]
        column = sum(self.slots[p] if p >= 0 else 1 for p in self.dose_pairs[:d])
        for j in range(self.slots[i]):
            code, dose = codes[:, j], doses[:, column + j]
            if enc.kind == "sigmoid":  # the member's measured curve: its features without noise
                known = (table.table[code], table.seen[code]) if isinstance(table, FeatureEmbedding) else ()
                s = enc.curve(dose, code, *known)
            else:  # no curve to scale by: on wherever the member is dosed
                s = (torch.nan_to_num(dose, nan=0.0) > 0).to(scale.dtype)
            scale = scale * torch.where(member[:, j], s, torch.ones_like(s))
        known = member.sum(1) > 1
        return self.interactions[str(i)](self._set_keys(codes, i), scale * known.to(scale.dtype))


class SetInteractions(nn.Module):
    """The interactions of the measured sets of one attribute: a strength of each set's own
    along one learned direction (``keys``: the sets' keys, sorted; zero strength at first).

    One direction shared by every measured set: a free vector per set (measured) took from
    the members' own effects what the pairs measured of them (the only measurements at a
    dose the single drugs lacked) and lost on held-out pairs, combinations and doses alike;
    three directions scored between (docs/perturbation.md).
    """

    def __init__(self, keys: torch.Tensor, width: int) -> None:
        super().__init__()
        self.register_buffer("keys", keys.sort().values)
        self.strength = nn.Embedding(len(keys), 1)
        nn.init.zeros_(self.strength.weight)
        self.direction = nn.Linear(1, width, bias=False)

    def forward(self, keys: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """Each row's interaction times ``scale``: zero where its key is no measured set's."""
        at = torch.searchsorted(self.keys, keys).clamp(max=len(self.keys) - 1)
        found = (self.keys[at] == keys).to(scale.dtype)
        return (found * scale)[:, None] * self.direction(self.strength(at))
