"""Conditional residual MLP noise predictor eps_theta(x_t, t, c).

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


class DoseEncoder(nn.Module):
    """Encodes one continuous attribute (already transformed to about [0, 1]).

    Sinusoidal features of the dose, then a small MLP; a learned embedding stands
    for "no dose given" (NaN), which classifier-free guidance needs.
    """

    def __init__(self, width: int, n_freq: int = 32) -> None:
        super().__init__()
        self.n_freq = n_freq
        self.mlp = nn.Sequential(nn.Linear(n_freq + 1, width), nn.SiLU(), nn.Linear(width, width))
        self.null = nn.Parameter(torch.zeros(width))

    def forward(self, dose: torch.Tensor) -> torch.Tensor:
        missing = torch.isnan(dose)
        d = torch.where(missing, torch.zeros_like(dose), dose)
        feats = torch.cat([d[:, None], sinusoidal_embedding(d * 1000.0, self.n_freq)], dim=-1)
        return torch.where(missing[:, None], self.null.to(feats.dtype), self.mlp(feats))


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
        self.dose_encoders = nn.ModuleList(DoseEncoder(width) for _ in range(n_doses))
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

    @property
    def null_codes(self) -> torch.Tensor:
        """The null token's code of each categorical attribute."""
        return torch.tensor(self.n_categories, dtype=torch.long)

    def condition(self, t: torch.Tensor, cats: torch.Tensor, doses: torch.Tensor) -> torch.Tensor:
        """The conditioning vector: time embedding + category embeddings + dose encodings."""
        cond = self.time_mlp(sinusoidal_embedding(t, self.time_dim))
        for i, table in enumerate(self.embeddings):
            cond = cond + table(cats[:, i])
        for i, enc in enumerate(self.dose_encoders):
            cond = cond + enc(doses[:, i])
        return self.cond_act(cond)

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, cats: torch.Tensor, doses: torch.Tensor
    ) -> torch.Tensor:
        cond = self.condition(t, cats, doses)
        h = self.input(x)
        for block in self.blocks:
            h = block(h, cond)
        return self.output(self.out_norm(h)) + self.skip(cond) * x
