"""A small diffusion transformer over latent tokens (DiT-style): the latent is split into
tokens, self-attention mixes them, and time and conditions enter every block by adaLN-Zero
(Peebles & Xie 2023). The same conditioning, skip and additive path as the residual MLP.

Pure torch: knows nothing of AnnData.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from scdiff.nn._mlp import ConditionedNetwork


class TransformerBlock(nn.Module):
    """Pre-norm self-attention and MLP, each shifted, scaled and gated by the condition;
    the gates start at zero, so every block begins as the identity."""

    def __init__(self, width: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False)
        self.attn = nn.MultiheadAttention(width, heads, dropout=dropout, batch_first=True)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(approximate="tanh"),
                                 nn.Dropout(dropout), nn.Linear(4 * width, width))
        self.modulation = nn.Linear(width, 6 * width)
        nn.init.zeros_(self.modulation.weight)
        nn.init.zeros_(self.modulation.bias)

    def forward(self, h: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        s1, c1, g1, s2, c2, g2 = self.modulation(cond)[:, None, :].chunk(6, dim=-1)
        a = self.norm1(h) * (1 + c1) + s1
        h = h + g1 * self.attn(a, a, a, need_weights=False)[0]
        return h + g2 * self.mlp(self.norm2(h) * (1 + c2) + s2)


class LatentTransformer(ConditionedNetwork):
    """Predicts the diffusion target of a latent from (x_t, t, conditions) with attention
    between the latent's tokens.

    Parameters
    ----------
    n_genes
        The latent's dimensions (the input and output width), split into ``tokens`` tokens
        of ``n_genes / tokens`` dimensions each (it needs to divide).
    n_categories, n_doses, dose_encoder, dose_pairs, additive
        The conditions, as for :class:`~scdiff.nn.ConditionalMLP`.
    width, depth, heads, dropout
        Token width, blocks, attention heads (dividing ``width``) and dropout.

    Examples
    --------
    >>> net = LatentTransformer(32, n_categories=[3], width=32, depth=2, tokens=8, heads=2)
    >>> x = torch.randn(4, 32); t = torch.randint(0, 1000, (4,))
    >>> net(x, t, torch.zeros(4, 1, dtype=torch.long), torch.zeros(4, 0)).shape
    torch.Size([4, 32])
    """

    def __init__(self, n_genes: int, n_categories: Sequence[int] = (), n_doses: int = 0, width: int = 128,
                 depth: int = 4, dropout: float = 0.0, time_dim: int = 128,
                 dose_encoder: str = "sinusoidal", dose_pairs: Sequence[int] = (),
                 additive: bool = False, tokens: int = 8, heads: int = 4) -> None:
        super().__init__()
        if tokens < 1 or n_genes % tokens or width % heads:
            raise ValueError(f"tokens = {tokens} needs to divide the latent's {n_genes} dimensions, "
                             f"and heads = {heads} the width {width}.")
        self._build_conditions(n_genes, n_categories, n_doses, width, time_dim, dose_encoder,
                               dose_pairs)
        self.tokens, self.token_dim = tokens, n_genes // tokens
        self.embed_tokens = nn.Linear(self.token_dim, width)
        self.position = nn.Parameter(torch.randn(tokens, width) * 0.02)
        self.blocks = nn.ModuleList(TransformerBlock(width, heads, dropout) for _ in range(depth))
        self.out_norm = nn.LayerNorm(width, elementwise_affine=False)
        self.out_modulation = nn.Linear(width, 2 * width)
        nn.init.zeros_(self.out_modulation.weight)
        nn.init.zeros_(self.out_modulation.bias)
        self.output = nn.Linear(width, self.token_dim)
        self._build_output_paths(n_genes, width, additive)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cats: torch.Tensor, doses: torch.Tensor
                ) -> torch.Tensor:
        time, parts, cond = self.embed(t, cats, doses)
        h = self.embed_tokens(x.view(x.shape[0], self.tokens, self.token_dim)) + self.position
        for block in self.blocks:
            h = block(h, cond)
        shift, scale = self.out_modulation(cond)[:, None, :].chunk(2, dim=-1)
        out = self.output(self.out_norm(h) * (1 + scale) + shift).reshape(x.shape[0], -1)
        return self.finish(out, x, time, parts, cond)


#: The networks a model can have: ``mlp`` (:class:`~scdiff.nn.ConditionalMLP`) and
#: ``transformer`` (:class:`LatentTransformer`, over the tokens of a latent).
BACKBONES = ("mlp", "transformer")


def build_network(config: dict) -> ConditionedNetwork:
    """The network a model's ``network`` config describes (``backbone`` absent: the MLP)."""
    from scdiff.nn._mlp import ConditionalMLP

    config = dict(config)
    backbone = config.pop("backbone", "mlp")
    if backbone == "transformer":
        return LatentTransformer(**config)
    config.pop("tokens", None)
    config.pop("heads", None)
    return ConditionalMLP(**config)
