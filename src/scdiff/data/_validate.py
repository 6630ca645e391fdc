"""Checks on the expression matrix that decide how it is read (counts, log or refused),
with advice that fits what the values look like."""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.sparse as sp

from scdiff._errors import InputError, arg

Scale = Literal["counts", "log", "table"]

# log1p(CP10k) of one read in a cell of 10 reads is log1p(1000) ~ 6.9; anything much larger
# that is not integer is normalised but not logged.
_MAX_LOG = 20.0
#: Negative values count as rounding noise (not scaling) when all are this small against the
#: largest value and this rare.
_TINY_NEGATIVE = 0.05
#: Cells read when telling log2 from natural-log data.
_BASE_CELLS = 200


def _values(X) -> np.ndarray:
    """The stored values of X (non-zeros for sparse), without densifying."""
    return X.data if sp.issparse(X) else np.asarray(X).ravel()


def detect_scale(X, *, source: str = "X", table: bool = False) -> Scale:
    """Decide whether ``X`` holds raw counts or log-normalised expression.

    Raises :class:`InputError` for NaN/Inf, negative values (scaled data, or small
    negatives from smoothing: see ``clip_negative``), data that look normalised but not
    log-transformed, and log2 data (scdiff reads natural logs). ``table`` words the advice
    for a plain table rather than single-cell expression.

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
    if float(vals.min()) < 0:
        _refuse_negative(vals, source, table)
    sample = vals[: 1_000_000]
    if np.all(np.equal(np.mod(sample, 1), 0)) and np.all(np.equal(np.mod(vals, 1), 0)):
        return "counts"
    if float(vals.max()) > _MAX_LOG:
        if table:
            raise InputError(
                f"{source} holds values that are neither counts nor log-scale expression (not "
                f"integer, up to {float(vals.max()):.4g}): scdiff models expression; put the "
                "columns on comparable log scales first, or model it as a plain table with "
                f"{arg('kind', 'tabular')} (any columns, any scale)."
            )
        raise InputError(
            f"{source} is not integer and reaches {float(vals.max()):.1f}: it looks normalised "
            "but not log-transformed; run sc.pp.log1p(adata) first, or give raw counts."
        )
    if _looks_log2(X):
        raise InputError(
            f"{source} looks like log2(1 + x), not the natural log1p scdiff reads (its values are "
            "whole multiples of one read in base 2, not base e): multiply it by ln 2 "
            "(adata.X = adata.X * np.log(2)), or give raw counts."
        )
    return "log"


def _refuse_negative(vals: np.ndarray, source: str, table: bool) -> None:
    vmin, vmax = float(vals.min()), float(vals.max())
    share = float((vals < 0).mean())
    if -vmin <= _TINY_NEGATIVE * max(vmax, 1e-12) and share < _TINY_NEGATIVE:
        raise InputError(
            f"{source} has {int((vals < 0).sum())} small negative values (min {vmin:.3g}, "
            f"{share:.1%} of the values), as smoothing or imputation leaves: pass "
            f"{arg('clip_negative', True)} to set them to 0."
        )
    if table:
        raise InputError(
            f"{source} has negative values (min {vmin:.3g}), which expression cannot have; model "
            f"it as a plain table with {arg('kind', 'tabular')} (any columns, any scale)."
        )
    raise InputError(
        f"{source} has negative values (min {vmin:.3g}): it looks scaled (z-scored); "
        "scdiff needs counts or log-normalised expression: use adata.raw "
        f"(adata = adata.raw.to_adata()) or {arg('layer')} with the counts layer."
    )


def clip_negative(X):
    """``X`` with negative values set to 0 (a copy; sparse stays sparse)."""
    if sp.issparse(X):
        X = X.copy()
        X.data = np.maximum(X.data, 0)
        X.eliminate_zeros()
        return X
    return np.maximum(np.asarray(X), 0)


def _integer_share(y: np.ndarray) -> float:
    """Fraction of a cell's values that are whole multiples (up to 20) of its smallest."""
    r = y / y.min()
    r = r[r <= 20]
    return float(np.mean(np.abs(r - np.round(r)) < 0.02))


def _looks_log2(X) -> bool:
    """Whether log-scale data were logged in base 2: then 2^x - 1, not e^x - 1, is a whole
    number of reads per cell (each cell's values are multiples of its one-read value)."""
    rows = X[: _BASE_CELLS]
    rows = rows.tocsr() if sp.issparse(rows) else np.asarray(rows)
    scores = {"e": [], "2": []}
    for i in range(rows.shape[0]):
        v = rows[i].data if sp.issparse(rows) else rows[i]
        v = np.asarray(v, dtype=np.float64)
        v = v[v > 0]
        if v.size < 5:
            continue
        scores["e"].append(_integer_share(np.expm1(v)))
        scores["2"].append(_integer_share(np.exp2(v) - 1))
    if len(scores["e"]) < 5:
        return False
    return float(np.mean(scores["2"])) > 0.9 and float(np.mean(scores["e"])) < 0.5
