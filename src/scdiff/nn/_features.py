"""Categories described by features: a drug by its descriptors or fingerprint.

An attribute whose categories come with a feature table is embedded by a learned map of
the features plus, for the categories seen in training, a learned residual of their own.
A category never measured has no residual: its embedding is the map of its features,
which is what lets a model generate a drug nobody measured (chemCPA's design, Hetzel et
al. 2022). During training the residual is left out for a random half of the rows, so
that the map alone has to carry every seen category's effect, as it will for unseen ones.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class FeatureMap(nn.Module):
    """Features to a vector: a linear map plus an MLP (wide and deep). With a few dozen
    categories to learn from, the linear part carries what is linear in the features (a
    drug's targets) and the MLP the rest (its potency through a dose curve).

    Examples
    --------
    >>> FeatureMap(3, 8)(torch.randn(5, 3)).shape
    torch.Size([5, 8])
    """

    def __init__(self, n_features: int, width: int, hidden: int | None = None) -> None:
        super().__init__()
        self.linear = nn.Linear(n_features, width)
        self.deep = nn.Sequential(nn.Linear(n_features, hidden or width), nn.SiLU(),
                                  nn.Linear(hidden or width, width))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(features) + self.deep(features)


class FeatureEmbedding(nn.Module):
    """Embedding of ``n_categories`` categories (code ``n_categories`` is the null token)
    from their features.

    Parameters
    ----------
    table
        The features, one row per category (already standardised), ``K x F``.
    seen
        For each category, whether it was measured in training (has a residual).
    width
        The embedding width; ``None`` for a holder of the features alone (no parameters:
        :meth:`keep` and :meth:`features` for a dose curve read from them).
    residual_drop
        The fraction of training rows whose residual is left out.
    noise
        The standard deviation of Gaussian noise added to the (standardised) features of
        each training row, so that the map is learned around the measured categories'
        features rather than at them alone.

    Examples
    --------
    >>> emb = FeatureEmbedding([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], [1, 1, 0], 8)
    >>> emb(torch.tensor([0, 2, 3])).shape
    torch.Size([3, 8])
    """

    def __init__(self, table: Sequence[Sequence[float]], seen: Sequence[int], width: int | None,
                 residual_drop: float = 0.5, noise: float = 0.0) -> None:
        super().__init__()
        feats = torch.as_tensor(table, dtype=torch.float32)
        k, n_features = feats.shape
        if len(seen) != k:
            raise ValueError(f"seen has {len(seen)} entries for a table of {k} categories.")
        # the null token (code k) has no features and is always "seen": its residual is its embedding
        self.register_buffer("table", torch.cat([feats, torch.zeros(1, n_features)]))
        self.register_buffer("seen", torch.tensor([*map(float, seen), 1.0]))
        self.num_embeddings, self.residual_drop, self.noise = k + 1, float(residual_drop), float(noise)
        if width is None:
            return
        self.map = FeatureMap(n_features, width)
        self.residual = nn.Embedding(k + 1, width)
        with torch.no_grad():
            self.residual.weight[:k].zero_()

    def keep(self, codes: torch.Tensor) -> torch.Tensor:
        """1 where a row's residual is used: seen categories, and in training a random half."""
        keep = self.seen[codes]
        if self.training and self.residual_drop > 0:
            keep = keep * (torch.rand(keep.shape, device=keep.device) >= self.residual_drop)
            keep[codes == self.num_embeddings - 1] = 1.0  # the null token is never dropped
        return keep

    def features(self, codes: torch.Tensor) -> torch.Tensor:
        """Each row's features, in training with ``noise`` added (never to the null token)."""
        feats = self.table[codes]
        if self.training and self.noise > 0:
            real = (codes != self.num_embeddings - 1)[:, None].to(feats.dtype)
            feats = feats + self.noise * real * torch.randn_like(feats)
        return feats

    def forward(self, codes: torch.Tensor, keep: torch.Tensor | None = None,
                features: torch.Tensor | None = None) -> torch.Tensor:
        keep = self.keep(codes) if keep is None else keep
        features = self.features(codes) if features is None else features
        return self.map(features) + keep[:, None] * self.residual(codes)

