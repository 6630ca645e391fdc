"""Bring any user file to the space the metrics compare in (log-normalised expression)."""

from __future__ import annotations

import anndata as ad

from scdiff.data._preprocess import log_normalize
from scdiff.data._validate import detect_scale


def as_log_space(adata: ad.AnnData, *, source: str = "data") -> ad.AnnData:
    """Counts become log1p(CP10k); log-normalised data pass through; scaled data are refused."""
    if detect_scale(adata.X, source=source) == "counts":
        adata = adata.copy()
        adata.X = log_normalize(adata.X)
    return adata
