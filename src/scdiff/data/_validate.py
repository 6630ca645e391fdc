"""Checks on the expression matrix that decide how it is read (counts, log or refused)."""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.sparse as sp

from scdiff._errors import InputError, arg

Scale = Literal["counts", "log"]

# log1p(CP10k) of one read in a cell of 10 reads is log1p(1000) ~ 6.9; anything much larger
# that is not integer is normalised but not logged.
_MAX_LOG = 20.0


def _values(X) -> np.ndarray:
    """The stored values of X (non-zeros for sparse), without densifying."""
    return X.data if sp.issparse(X) else np.asarray(X).ravel()


def detect_scale(X, *, source: str = "X") -> Scale:
    """Decide whether ``X`` holds raw counts or log-normalised expression.

    Raises :class:`InputError` for NaN/Inf, negative (scaled) values and data that
    look normalised but not log-transformed.

    Examples
    --------
    >>> import numpy as np
    >>> detect_scale(np.array([[0, 3], [5, 1]]))
    'counts'
    >>> detect_scale(np.log1p(np.array([[0, 3.5], [5, 1]])))
    'log'
    """
    vals = _values(X)
    if vals.size and not np.issubdtype(vals.dtype, np.number):
        raise InputError(f"{source} is not numeric (dtype {vals.dtype}); give expression values.")
    if vals.size == 0:
        return "log"
    if not np.all(np.isfinite(vals)):
        n_bad = int((~np.isfinite(vals)).sum())
        raise InputError(
            f"{source} holds {n_bad} NaN or infinite values; remove or impute them before training."
        )
    vmin = float(vals.min())
    if vmin < 0:
        raise InputError(
            f"{source} has negative values (min {vmin:.3g}): it looks scaled (z-scored); "
            "scdiff needs counts or log-normalised expression: use adata.raw "
            f"(adata = adata.raw.to_adata()) or {arg('layer')} with the counts layer."
        )
    sample = vals[: 1_000_000]
    if np.all(np.equal(np.mod(sample, 1), 0)) and np.all(np.equal(np.mod(vals, 1), 0)):
        return "counts"
    if float(vals.max()) > _MAX_LOG:
        raise InputError(
            f"{source} is not integer and reaches {float(vals.max()):.1f}: it looks normalised "
            "but not log-transformed; run sc.pp.log1p(adata) first, or give raw counts."
        )
    return "log"
