"""Encodings of a dose (and of the diffusion's timestep): sinusoidal features, and the
dose encoders of :class:`~scdiff.nn.ConditionalMLP`, a drug's curve per drug or from its
features."""

from __future__ import annotations

import math

import torch
from torch import nn

from scdiff.nn._features import FeatureMap


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
    ``n_pair`` counts the paired attribute's codes including its null token. With
    ``pair_features`` (the drugs described by features) the drug's direction comes from a
    learned map of its features, its slope and midpoint from a linear map of them, each
    plus a residual of the drug's own where it was measured.

    A learned embedding stands for "no dose given" (NaN), which classifier-free
    guidance needs.

    Examples
    --------
    >>> enc = DoseEncoder(16, kind="sigmoid", n_pair=3)
    >>> enc(torch.tensor([0.0, 0.5, float("nan")]), torch.tensor([0, 1, 2])).shape
    torch.Size([3, 16])
    """

    def __init__(self, width: int, n_freq: int = 32, *, kind: str = "sinusoidal",
                 n_pair: int = 0, pair_dim: int = 16, pair_features: int = 0) -> None:
        super().__init__()
        if kind not in DOSE_ENCODERS:
            raise ValueError(f"dose encoder {kind!r} needs to be one of {', '.join(DOSE_ENCODERS)}.")
        self.kind, self.n_freq, self.n_pair, self.pair_features = kind, n_freq, n_pair, pair_features
        if pair_features:
            # the drug's curve (or the MLP's drug input) from its features, plus a residual per
            # measured drug (zero at first): what lets a drug never measured have a dose response.
            # A sigmoid's direction comes from the wide-and-deep map, its slope and midpoint
            # from a linear map alone: with a dozen drugs, the MLP placed a drug's midpoint by
            # its unrelated descriptors (measured: docs/perturbation.md)
            head = width if kind == "sigmoid" else pair_dim
            self.feature_head = FeatureMap(pair_features, head, hidden=width)
            if kind == "sigmoid":
                self.curve_head = nn.Linear(pair_features, 2)  # slope, midpoint: 6 and 0.5 at first
                nn.init.zeros_(self.curve_head.weight)
                nn.init.zeros_(self.curve_head.bias)
            # the residual covers the head's outputs: direction (or MLP input), slope, midpoint
            self.residual = nn.Embedding(n_pair, head + 2 if kind == "sigmoid" else head)
            nn.init.zeros_(self.residual.weight)
        if kind == "sigmoid":
            if not pair_features:
                k = max(n_pair, 1)
                self.slope = nn.Parameter(torch.full((k,), 6.0))
                self.mid = nn.Parameter(torch.full((k,), 0.5))
                self.direction = nn.Embedding(k, width)
        else:
            in_dim = (n_freq + 1 if kind == "sinusoidal" else 1) + (pair_dim if n_pair else 0)
            if n_pair and not pair_features:
                self.pair = nn.Embedding(n_pair, pair_dim)
            self.mlp = nn.Sequential(nn.Linear(in_dim, width), nn.SiLU(), nn.Linear(width, width))
        self.null = nn.Parameter(torch.zeros(width))

    def _from_features(self, pair: torch.Tensor, features: torch.Tensor, keep: torch.Tensor):
        head = self.feature_head(features)
        if self.kind == "sigmoid":
            head = torch.cat([head, self.curve_head(features)], dim=-1)
        return head + keep[:, None] * self.residual(pair)

    @property
    def curve_residuals(self) -> torch.Tensor | None:
        """The measured drugs' own slope and midpoint (the residuals on the features' curve;
        ``None`` for an encoder without features or no sigmoid)."""
        return self.residual.weight[:, -2:] if self.pair_features and self.kind == "sigmoid" else None

    def _curve(self, d, pair, features, keep):
        """The sigmoid's response ``s(d)`` per row (``d`` without NaN) and its direction."""
        if self.pair_features:
            params = self._from_features(pair, features, keep)
            a, m, direction = 6.0 + params[:, -2], 0.5 + params[:, -1], params[:, :-2]
        else:
            idx = pair if self.n_pair else torch.zeros_like(d, dtype=torch.long)
            a, m, direction = self.slope[idx], self.mid[idx], self.direction(idx)
        return torch.sigmoid(a * (d - m)) - torch.sigmoid(-a * m), direction

    def curve(self, dose: torch.Tensor, pair: torch.Tensor | None = None,
              features: torch.Tensor | None = None, keep: torch.Tensor | None = None) -> torch.Tensor:
        """The sigmoid encoder's response ``s(d)`` alone, in [0, 1) (0 where no dose is given)."""
        if self.kind != "sigmoid":
            raise ValueError(f"a {self.kind!r} dose encoder has no dose curve; use kind='sigmoid'.")
        d = torch.nan_to_num(dose, nan=0.0)
        return self._curve(d, pair, features, keep)[0]

    def forward(self, dose: torch.Tensor, pair: torch.Tensor | None = None,
                features: torch.Tensor | None = None, keep: torch.Tensor | None = None) -> torch.Tensor:
        """The encoding of each row's dose; ``pair``: the paired drug's codes, and for a drug
        described by features its rows' ``features`` and ``keep`` (1 where its residual is used)."""
        missing = torch.isnan(dose)
        d = torch.where(missing, torch.zeros_like(dose), dose)
        if self.n_pair and pair is None:
            raise ValueError("this dose encoder is paired with a categorical attribute; pass its codes.")
        if self.pair_features and (features is None or keep is None):
            raise ValueError("this dose encoder reads its drug's features; pass them and keep.")
        if self.kind == "sigmoid":
            s, direction = self._curve(d, pair, features, keep)
            out = s[:, None] * direction
        else:
            feats = [d[:, None]]
            if self.kind == "sinusoidal":
                feats.append(sinusoidal_embedding(d * 1000.0, self.n_freq))
            if self.n_pair:
                feats.append(self._from_features(pair, features, keep) if self.pair_features
                             else self.pair(pair))
            out = self.mlp(torch.cat(feats, dim=-1))
        return torch.where(missing[:, None], self.null.to(out.dtype), out)
