"""Conditional residual MLP: the network that predicts the diffusion target (eps, x0 or v,
as the schedule's ``prediction`` says) from (x_t, t, c).

Pure torch: knows nothing of AnnData. Conditions arrive as integer codes (one
column per categorical attribute, the last code of each being its learned null
token) and float doses (one column per continuous attribute, NaN meaning "no
dose given", replaced by a learned null embedding).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from scdiff.nn._dose import DoseEncoder, sinusoidal_embedding
from scdiff.nn._features import FeatureEmbedding


class ResidualBlock(nn.Module):
    """LayerNorm -> Linear -> SiLU -> Linear, modulated by the condition (adaLN-Zero).

    The gate starts at zero so every block begins as the identity (Peebles & Xie 2023).
    """

    def __init__(self, width: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width, elementwise_affine=False)
        self.ff = nn.Sequential(
            nn.Linear(width, width * 2), nn.SiLU(), nn.Dropout(dropout), nn.Linear(width * 2, width)
        )
        self.modulation = nn.Linear(width, 3 * width)
        nn.init.zeros_(self.modulation.weight)
        nn.init.zeros_(self.modulation.bias)

    def forward(self, h: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        shift, scale, gate = self.modulation(cond).chunk(3, dim=-1)
        return h + gate * self.ff(self.norm(h) * (1 + scale) + shift)


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


class ConditionalMLP(nn.Module):
    """Residual MLP predicting the diffusion target from (x_t, t, conditions).

    Parameters
    ----------
    n_genes
        Input and output width.
    n_categories
        For each categorical attribute, its number of categories (a null token is added).
    n_doses
        Number of continuous attributes.
    width, depth
        Hidden width and number of residual blocks.
    dropout
        Dropout inside each block.
    dose_encoder
        How doses are encoded: one of :data:`DOSE_ENCODERS` (see :class:`DoseEncoder`).
    dose_pairs
        For each dose, the index of the categorical attribute it interacts with (the
        drug whose dose it is), or -1 for none.
    additive
        Add an additive path (CPA-like): the attributes' embeddings, summed and mapped
        linearly to gene space, add an offset ``g(t) W sum_c e_c`` to the output, the gate
        ``g`` a learned function of the timestep (the factor that turns a shift of the
        clean cells' mean into the prediction target's units, about ``-sigma_t`` for v).
        Main effects then add up across attributes by construction, which is what a
        combination never measured needs; the blocks learn the rest (interactions, the
        shape of each condition's distribution). Measured in docs/perturbation.md.
    slots
        For each categorical attribute, how many of its categories one cell can hold at
        once (a set of drugs: ``drugA+drugB`` is 2); default 1 each. An attribute of ``s``
        slots takes ``s`` code columns (the null code in a column past the first is "no
        member"), embedded as the sum of its members' embeddings (order-free), and a dose
        paired with it takes ``s`` dose columns, one per member.
    features
        For each categorical attribute, ``None`` or its categories' features (``{"table":
        K x F, "seen": K flags}``): the attribute is then embedded from its features
        (:class:`~scdiff.nn.FeatureEmbedding`), and so is the curve of a dose paired
        with it, so that a category never measured can be generated.
    feature_noise
        Noise added to described categories' features in training
        (:class:`~scdiff.nn.FeatureEmbedding`).
    drug_offset
        Whether a categorical attribute with a paired dose (the drug) adds its own embedding
        to the additive path, an offset at any dose. Without (``False``), a drug enters
        the additive path through its dose's encoding alone, which is zero at dose 0 (as
        in CPA): a drug never measured then gets no offset its features would have to
        predict at every dose.

    Examples
    --------
    >>> net = ConditionalMLP(50, n_categories=[3], n_doses=1, width=64, depth=2)
    >>> x = torch.randn(8, 50); t = torch.randint(0, 1000, (8,))
    >>> net(x, t, torch.zeros(8, 1, dtype=torch.long), torch.rand(8, 1)).shape
    torch.Size([8, 50])
    """

    def __init__(
        self,
        n_genes: int,
        n_categories: Sequence[int] = (),
        n_doses: int = 0,
        width: int = 512,
        depth: int = 4,
        dropout: float = 0.0,
        time_dim: int = 128,
        dose_encoder: str = "sinusoidal",
        dose_pairs: Sequence[int] = (),
        additive: bool = False,
        slots: Sequence[int] = (),
        features: Sequence[dict | None] = (),
        feature_noise: float = 0.0,
        drug_offset: bool = True,
    ) -> None:
        super().__init__()
        self.n_genes = n_genes
        self.n_categories = list(n_categories)
        self.n_doses = n_doses
        self.slots, described, pairs = _checked(self.n_categories, n_doses, slots, features, dose_pairs)
        self.time_dim = time_dim
        self.time_mlp = nn.Sequential(
            nn.Linear(time_dim, width), nn.SiLU(), nn.Linear(width, width)
        )
        # one table per attribute; code n_categories[i] is that attribute's null token
        self.embeddings = nn.ModuleList(
            FeatureEmbedding(f["table"], f["seen"], width, noise=feature_noise) if f
            else nn.Embedding(k + 1, width)
            for k, f in zip(self.n_categories, described, strict=True))
        self.dose_pairs = pairs
        self.dose_encoders = nn.ModuleList(
            DoseEncoder(width, kind=dose_encoder, n_pair=self.n_categories[p] + 1 if p >= 0 else 0,
                        pair_features=len(described[p]["table"][0]) if p >= 0 and described[p] else 0)
            for p in pairs
        )
        # the attribute each code column and each dose column belongs to
        self.cat_columns = [i for i, s in enumerate(self.slots) for _ in range(s)]
        self.dose_columns = [i for i, p in enumerate(pairs) for _ in range(self.slots[p] if p >= 0 else 1)]
        self.cond_act = nn.SiLU()
        self.input = nn.Linear(n_genes, width)
        self.blocks = nn.ModuleList(ResidualBlock(width, dropout) for _ in range(depth))
        self.out_norm = nn.LayerNorm(width)
        self.output = nn.Linear(width, n_genes)
        # A per-gene skip from x_t, gated by the condition (time mostly): the hidden width is
        # usually below the number of genes, and without it the network cannot pass x_t
        # through, which eps-prediction at high noise needs (its error floors at 1 - width/genes).
        self.skip = nn.Linear(width, n_genes)
        nn.init.zeros_(self.skip.weight)
        nn.init.zeros_(self.skip.bias)
        n_attributes = len(self.embeddings) + len(self.dose_encoders)
        self.additive = bool(additive) and n_attributes > 0  # nothing to add without conditions
        if self.additive:
            # one map for all attributes: the embeddings are free, so a map per attribute
            # adds cost (a width x genes product each), not reach (docs/perturbation.md)
            self.offset = nn.Linear(width, n_genes, bias=False)
            nn.init.zeros_(self.offset.weight)
            # the offsets start at zero; a gate that does not lets them learn from step one
            self.offset_gate = nn.Linear(width, 1)
            nn.init.zeros_(self.offset_gate.weight)
            nn.init.constant_(self.offset_gate.bias, -0.5)
        self.drug_offset = bool(drug_offset)

    @property
    def null_codes(self) -> torch.Tensor:
        """The null token's code of each code column (every slot of each categorical attribute)."""
        return torch.tensor([self.n_categories[i] for i in self.cat_columns], dtype=torch.long)

    def attributes(self, cats: torch.Tensor, doses: torch.Tensor) -> list[torch.Tensor]:
        """Each attribute's embedding: the categorical ones, then the dose encodings. An
        attribute of several slots sums its members' (a column past the first that holds
        the null code is no member), and a dose paired with it sums one per member."""
        return self._parts(*self._slots(cats, doses))

    def _parts(self, cat_slots, dose_slots, present) -> list[torch.Tensor]:
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
        cat_slots = [[table(cats[:, starts[i] + j]) if keeps[i][j] is None
                      else table(cats[:, starts[i] + j], *keeps[i][j]) for j in range(self.slots[i])]
                     for i, table in enumerate(self.embeddings)]
        dose_slots, column = [], 0
        for enc, p in zip(self.dose_encoders, self.dose_pairs, strict=True):
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
    def _sum(slots: list[torch.Tensor], present: list) -> torch.Tensor:
        """The slots' embeddings summed, a slot past the first only where it holds a member."""
        out = slots[0]
        for emb, mask in zip(slots[1:], present[1:], strict=True):
            out = out + mask[:, None].to(emb.dtype) * emb
        return out

    def condition(self, time: torch.Tensor, parts: list[torch.Tensor]) -> torch.Tensor:
        """The blocks' conditioning vector: the time embedding plus every attribute's."""
        cond = time
        for part in parts:
            cond = cond + part
        return self.cond_act(cond)

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, cats: torch.Tensor, doses: torch.Tensor
    ) -> torch.Tensor:
        time = self.time_mlp(sinusoidal_embedding(t, self.time_dim))
        slots = self._slots(cats, doses)
        parts = self._parts(*slots)
        cond = self.condition(time, parts)
        h = self.input(x)
        for block in self.blocks:
            h = block(h, cond)
        out = self.output(self.out_norm(h)) + self.skip(cond) * x
        if self.additive:
            out = out + self.offset_gate(time) * self.offset(self._additive(parts))
        return out

    def _additive(self, parts: list[torch.Tensor]) -> torch.Tensor:
        """What the additive path maps to gene space: every attribute's embedding (without a
        drug's own where ``drug_offset`` is off: its dose's encoding carries it)."""
        skip = set() if self.drug_offset else {p for p in self.dose_pairs if p >= 0}
        return sum(part for i, part in enumerate(parts) if i not in skip)
