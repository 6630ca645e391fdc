"""Per-gene moments of two samples of cells and how well they agree."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.stats import pearsonr, spearmanr

from scdiff.data import to_dense

#: Number of most variable genes whose gene-gene correlations are compared.
N_CORR_GENES = 100


@dataclass(frozen=True)
class GeneStats:
    """Per-gene summary of a set of cells (log-expression)."""

    n: int
    mean: np.ndarray
    var: np.ndarray  # unbiased (ddof=1)
    zero_frac: np.ndarray  # fraction of cells with expression <= 0


def gene_stats(x) -> GeneStats:
    """Mean, variance and fraction of zeros of each gene, without densifying a sparse ``x``.

    Examples
    --------
    >>> gene_stats(np.array([[0.0, 1.0], [2.0, 3.0]])).zero_frac.tolist()
    [0.5, 0.0]
    """
    X = x
    n = X.shape[0]
    if sp.issparse(X):
        X = sp.csr_matrix(X, dtype=np.float64)
        mean = np.asarray(X.mean(axis=0, dtype=np.float64)).ravel()
        sq = np.asarray(X.multiply(X).mean(axis=0, dtype=np.float64)).ravel()
        nonzero = np.asarray((X > 0).sum(axis=0)).ravel()
    else:
        X = np.asarray(X)
        mean, sq = X.mean(axis=0, dtype=np.float64), (X * X).mean(axis=0, dtype=np.float64)
        nonzero = (X > 0).sum(axis=0)
    var = np.maximum(sq - mean * mean, 0.0) * n / max(n - 1, 1)
    return GeneStats(n=n, mean=mean, var=var, zero_frac=1.0 - nonzero / max(n, 1))


def correlation(x: np.ndarray, y: np.ndarray, *, kind: str = "pearson") -> float:
    """Pearson (or ``kind="spearman"``) correlation of two vectors; NaN when either is constant.

    Examples
    --------
    >>> correlation(np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 7.0])) > 0.99
    True
    """
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float((pearsonr if kind == "pearson" else spearmanr)(x, y)[0])


def top_variable(stats: GeneStats, n: int = N_CORR_GENES) -> np.ndarray:
    """Indices of the ``n`` genes with the highest variance (ties broken by index)."""
    order = np.argsort(-stats.var, kind="stable")
    return np.sort(order[: min(n, int((stats.var > 0).sum()) or 1)])


def gene_corr_matrix(X, genes: np.ndarray) -> np.ndarray:
    """Pearson correlation between ``genes`` across cells; constant genes correlate 0."""
    sub = to_dense(X[:, genes])
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.corrcoef(sub, rowvar=False)
    return np.nan_to_num(np.atleast_2d(c), nan=0.0)


def moment_metrics(ref: GeneStats, other: GeneStats, ref_corr: np.ndarray, other_corr: np.ndarray
                   ) -> dict[str, float]:
    """Agreement of per-gene moments between a reference and another sample.

    Returns
    -------
    dict
        ``mean_pearson`` and ``mean_spearman`` of per-gene means,
        ``var_pearson`` of per-gene variances, ``zero_frac_mae`` the mean
        absolute difference of the fraction of zeros per gene, and
        ``corr_pearson`` the Pearson correlation between the upper triangles
        of the two gene-gene correlation matrices, ``corr_distance`` their root mean
        squared difference (0 when the genes co-vary alike; the spread genes share,
        measured directly).
    """
    iu = np.triu_indices(ref_corr.shape[0], k=1)
    gap = ref_corr[iu] - other_corr[iu]
    return {
        "mean_pearson": correlation(ref.mean, other.mean),
        "mean_spearman": correlation(ref.mean, other.mean, kind="spearman"),
        "var_pearson": correlation(ref.var, other.var),
        "zero_frac_mae": float(np.mean(np.abs(ref.zero_frac - other.zero_frac))),
        "corr_pearson": correlation(ref_corr[iu], other_corr[iu]),
        "corr_distance": float(np.sqrt(np.mean(gap * gap))) if gap.size else float("nan"),
    }
