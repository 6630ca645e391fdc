"""Conditional residual MLP: the network that predicts the diffusion target (eps, x0 or v,
as the schedule's ``prediction`` says) from (x_t, t, c).

Pure torch: knows nothing of AnnData. Conditions arrive as integer codes (one
column per categorical attribute, the last code of each being its learned null
token) and float doses (one column per continuous attribute, NaN meaning "no
dose given", replaced by a learned null embedding).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


def sinusoidal_embedding(x: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Transformer-style sinusoidal features of a scalar per row (Vaswani et al. 2017)."""
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, device=x.device, dtype=torch.float32) / half
    )
    args = x.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


#: The dose encoders :class:`DoseEncoder` offers (compared in docs/perturbation.md).
DOSE_ENCODERS = ("sinusoidal", "mlp", "sigmoid")


class DoseEncoder(nn.Module):
    """Encodes one continuous attribute (already transformed to about [0, 1]).

    ``kind`` chooses the dose features:

    - ``"sinusoidal"``: the dose and sinusoidal features of it, then a small MLP.
    - ``"mlp"``: a small MLP of the dose alone.
    - ``"sigmoid"``: CPA-like (Lotfollahi et al. 2023): a learned direction scaled by a
      sigmoid response ``s(d) = sigmoid(a (d - m)) - sigmoid(-a m)`` (zero at dose 0),
      the slope ``a`` and midpoint ``m`` learned. On transformed doses, which are
      ``log1p`` of the dose, this is a Hill curve.

    With ``n_pair > 0`` the encoding depends on a paired categorical attribute (the
    drug): the MLPs take a learned embedding of its code as input, and the sigmoid gets
    a slope, midpoint and direction per code. That is the drug-by-dose interaction;
    ``n_pair`` counts the paired attribute's codes including its null token.

    A learned embedding stands for "no dose given" (NaN), which classifier-free
    guidance needs.

    Examples
    --------
    >>> enc = DoseEncoder(16, kind="sigmoid", n_pair=3)
    >>> enc(torch.tensor([0.0, 0.5, float("nan")]), torch.tensor([0, 1, 2])).shape
    torch.Size([3, 16])
    """

    def __init__(self, width: int, n_freq: int = 32, *, kind: str = "sinusoidal",
                 n_pair: int = 0, pair_dim: int = 16) -> None:
        super().__init__()
        if kind not in DOSE_ENCODERS:
            raise ValueError(f"dose encoder {kind!r} needs to be one of {', '.join(DOSE_ENCODERS)}.")
        self.kind, self.n_freq, self.n_pair = kind, n_freq, n_pair
        if kind == "sigmoid":
            k = max(n_pair, 1)
            self.slope = nn.Parameter(torch.full((k,), 6.0))
            self.mid = nn.Parameter(torch.full((k,), 0.5))
            self.direction = nn.Embedding(k, width)
        else:
            in_dim = (n_freq + 1 if kind == "sinusoidal" else 1) + (pair_dim if n_pair else 0)
            if n_pair:
                self.pair = nn.Embedding(n_pair, pair_dim)
            self.mlp = nn.Sequential(nn.Linear(in_dim, width), nn.SiLU(), nn.Linear(width, width))
        self.null = nn.Parameter(torch.zeros(width))

    def forward(self, dose: torch.Tensor, pair: torch.Tensor | None = None) -> torch.Tensor:
        missing = torch.isnan(dose)
        d = torch.where(missing, torch.zeros_like(dose), dose)
        if self.n_pair and pair is None:
            raise ValueError("this dose encoder is paired with a categorical attribute; pass its codes.")
        if self.kind == "sigmoid":
            idx = pair if self.n_pair else torch.zeros_like(d, dtype=torch.long)
            a, m = self.slope[idx], self.mid[idx]
            s = torch.sigmoid(a * (d - m)) - torch.sigmoid(-a * m)
            out = s[:, None] * self.direction(idx)
        else:
            feats = [d[:, None]]
            if self.kind == "sinusoidal":
                feats.append(sinusoidal_embedding(d * 1000.0, self.n_freq))
            if self.n_pair:
                feats.append(self.pair(pair))
            out = self.mlp(torch.cat(feats, dim=-1))
        return torch.where(missing[:, None], self.null.to(out.dtype), out)


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
    ) -> None:
        super().__init__()
        self.n_genes = n_genes
        self.n_categories = list(n_categories)
        self.n_doses = n_doses
        self.time_dim = time_dim
        self.time_mlp = nn.Sequential(
            nn.Linear(time_dim, width), nn.SiLU(), nn.Linear(width, width)
        )
        # one table per attribute; code n_categories[i] is that attribute's null token
        self.embeddings = nn.ModuleList(nn.Embedding(k + 1, width) for k in self.n_categories)
        pairs = list(dose_pairs) or [-1] * n_doses
        if len(pairs) != n_doses or any(not -1 <= p < len(self.n_categories) for p in pairs):
            raise ValueError(f"dose_pairs = {pairs} needs one entry per dose, each -1 or a "
                             f"categorical attribute's index (< {len(self.n_categories)}).")
        self.dose_pairs = pairs
        self.dose_encoders = nn.ModuleList(
            DoseEncoder(width, kind=dose_encoder, n_pair=self.n_categories[p] + 1 if p >= 0 else 0)
            for p in pairs
        )
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

    @property
    def null_codes(self) -> torch.Tensor:
        """The null token's code of each categorical attribute."""
        return torch.tensor(self.n_categories, dtype=torch.long)

    def attributes(self, cats: torch.Tensor, doses: torch.Tensor) -> list[torch.Tensor]:
        """Each attribute's embedding: the categorical ones, then the dose encodings."""
        parts = [table(cats[:, i]) for i, table in enumerate(self.embeddings)]
        parts += [enc(doses[:, i], cats[:, p] if p >= 0 else None)
                  for i, (enc, p) in enumerate(zip(self.dose_encoders, self.dose_pairs, strict=True))]
        return parts

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
        parts = self.attributes(cats, doses)
        cond = self.condition(time, parts)
        h = self.input(x)
        for block in self.blocks:
            h = block(h, cond)
        out = self.output(self.out_norm(h)) + self.skip(cond) * x
        if self.additive:
            out = out + self.offset_gate(time) * self.offset(sum(parts))
        return out
