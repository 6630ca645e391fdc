"""A cell's conditions as vectors: one embedding per categorical attribute (a set of
categories summed over its members, a category described by features mapped from them)
and one encoding per dose (a drug's dose curve per drug, or from its features).

Pure torch. Conditions arrive as integer codes (one column per categorical attribute and
slot, the last code of each attribute being its learned null token) and float doses (one
column per dose and slot, NaN meaning "no dose given", replaced by a learned null
embedding). :class:`~scdiff.nn.ConditionalMLP` and :class:`~scdiff.nn.MeanModel` both read
their conditions through this base.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from scdiff.nn._dose import DoseEncoder
from scdiff.nn._features import FeatureEmbedding


def _checked(n_categories: list[int], n_doses: int, slots, features, dose_pairs):
    """``(slots, features, dose pairs)`` of a network, each with one entry per attribute."""
    slots = [int(s) for s in slots] or [1] * len(n_categories)
    described = list(features) or [None] * len(n_categories)
    if len(slots) != len(n_categories) or len(described) != len(n_categories):
        raise ValueError("slots and features need one entry per categorical attribute.")
    for k, f in zip(n_categories, described, strict=True):
        if f and len(f["table"]) != k:
            raise ValueError(f"a feature table has {len(f['table'])} rows for {k} categories.")
    pairs = list(dose_pairs) or [-1] * n_doses
    if len(pairs) != n_doses or any(not -1 <= p < len(n_categories) for p in pairs):
        raise ValueError(f"dose_pairs = {pairs} needs one entry per dose, each -1 or a "
                         f"categorical attribute's index (< {len(n_categories)}).")
    return slots, described, pairs


def perturbations(n_categories: int, dose_pairs: Sequence[int]) -> list[int]:
    """The attributes that are perturbations, indexed as :meth:`ConditionEmbedding.attributes`
    lists them: each of ``n_categories`` categorical attributes a dose is paired with (the
    drug), then those doses.

    Examples
    --------
    >>> perturbations(2, [1, -1])
    [1, 2]
    """
    drugs = sorted({p for p in dose_pairs if p >= 0})
    return drugs + [n_categories + d for d, p in enumerate(dose_pairs) if p >= 0]


class ConditionEmbedding(nn.Module):
    """Base of the modules that read a cell's conditions: :meth:`attributes` gives each
    attribute's vector. A subclass calls :meth:`_init_conditions` in its constructor
    (where it does fixes the order its parameters are drawn in)."""

    def _init_conditions(self, n_categories: Sequence[int], n_doses: int, width: int, *,
                         dose_encoder: str, dose_pairs: Sequence[int], slots: Sequence[int],
                         features: Sequence[dict | None], feature_noise: float,
                         skip: Sequence[int] = ()) -> None:
        """``skip``: the attributes this module does not read (their index among the
        categorical attributes, then the doses'), which get no parameters and ``None`` from
        :meth:`attributes`."""
        self.n_categories = list(n_categories)
        self.n_doses = n_doses
        self.slots, described, pairs = _checked(self.n_categories, n_doses, slots, features, dose_pairs)
        n_cat, self.skipped = len(self.n_categories), set(skip)
        # a categorical attribute's features are read by its embedding or its doses' curves
        self.read = [i not in self.skipped or any(p == i and n_cat + d not in self.skipped
                                                  for d, p in enumerate(pairs))
                     for i in range(n_cat)]
        # one table per attribute; code n_categories[i] is that attribute's null token. A
        # described attribute whose dose curve alone is read keeps its features, without
        # parameters.
        self.embeddings = nn.ModuleList(
            nn.Identity() if not self.read[i] else
            FeatureEmbedding(f["table"], f["seen"], None if i in self.skipped else width,
                             noise=feature_noise) if f
            else nn.Identity() if i in self.skipped else nn.Embedding(k + 1, width)
            for i, (k, f) in enumerate(zip(self.n_categories, described, strict=True)))
        self.dose_pairs = pairs
        self.dose_encoders = nn.ModuleList(
            nn.Identity() if n_cat + d in self.skipped else
            DoseEncoder(width, kind=dose_encoder, n_pair=self.n_categories[p] + 1 if p >= 0 else 0,
                        pair_features=len(described[p]["table"][0]) if p >= 0 and described[p] else 0)
            for d, p in enumerate(pairs)
        )
        # the attribute each code column and each dose column belongs to
        self.cat_columns = [i for i, s in enumerate(self.slots) for _ in range(s)]
        self.dose_columns = [i for i, p in enumerate(pairs) for _ in range(self.slots[p] if p >= 0 else 1)]

    @property
    def null_codes(self) -> torch.Tensor:
        """The null token's code of each code column (every slot of each categorical attribute)."""
        return torch.tensor([self.n_categories[i] for i in self.cat_columns], dtype=torch.long)

    def attributes(self, cats: torch.Tensor, doses: torch.Tensor) -> list[torch.Tensor | None]:
        """Each attribute's embedding: the categorical ones, then the dose encodings
        (``None`` for an attribute this module skips). An attribute of several slots sums
        its members' (a column past the first that holds the null code is no member), and a
        dose paired with it sums one per member."""
        return self._parts(*self._slots(cats, doses))

    def _parts(self, cat_slots, dose_slots, present) -> list[torch.Tensor | None]:
        return [self._sum(slots, present[i]) for i, slots in enumerate(cat_slots)] + [
            self._sum(slots, present[p] if p >= 0 else [None])
            for slots, p in zip(dose_slots, self.dose_pairs, strict=True)]

    def _slots(self, cats: torch.Tensor, doses: torch.Tensor):
        """Per slot: each categorical attribute's member embeddings, each dose's encodings,
        and which slots hold a member (``None`` for the first, which always does)."""
        starts = [sum(self.slots[:i]) for i in range(len(self.slots))]
        present = [[None] + [cats[:, s + j] != self.n_categories[i] for j in range(1, n)]
                   for i, (s, n) in enumerate(zip(starts, self.slots, strict=True))]
        # a described member's features and whether its residual is used: drawn once per slot
        # (in training), shared by its embedding and its dose's curve
        keeps = [[(table.keep(cats[:, s + j]), table.features(cats[:, s + j]))
                  if isinstance(table, FeatureEmbedding) else None for j in range(n)]
                 for table, s, n in zip(self.embeddings, starts, self.slots, strict=True)]
        cat_slots = [None if i in self.skipped else
                     [table(cats[:, starts[i] + j]) if keeps[i][j] is None
                      else table(cats[:, starts[i] + j], *keeps[i][j]) for j in range(self.slots[i])]
                     for i, table in enumerate(self.embeddings)]
        dose_slots, column, n_cat = [], 0, len(self.n_categories)
        for d, (enc, p) in enumerate(zip(self.dose_encoders, self.dose_pairs, strict=True)):
            if n_cat + d in self.skipped:
                dose_slots.append(None)
                column += self.slots[p] if p >= 0 else 1
                continue
            if p < 0:
                dose_slots.append([enc(doses[:, column])])
                column += 1
                continue
            slot = []
            for j in range(self.slots[p]):
                extra = keeps[p][j][::-1] if keeps[p][j] is not None else ()  # (features, keep)
                slot.append(enc(doses[:, column + j], cats[:, starts[p] + j], *extra))
            dose_slots.append(slot)
            column += self.slots[p]
        return cat_slots, dose_slots, present

    @staticmethod
    def _sum(slots: list[torch.Tensor] | None, present: list) -> torch.Tensor | None:
        """The slots' embeddings summed, a slot past the first only where it holds a member."""
        if slots is None:
            return None
        out = slots[0]
        for emb, mask in zip(slots[1:], present[1:], strict=True):
            out = out + mask[:, None].to(emb.dtype) * emb
        return out
