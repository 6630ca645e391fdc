"""Marker genes of each group, from per-group gene moments (numpy only)."""

from __future__ import annotations

import numpy as np

from scdiff.metrics._moments import GeneStats, correlation


def marker_scores(stats: dict[str, GeneStats]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Welch t-statistic and log-fold-change of each group against the rest.

    "The rest" is the unweighted average of the other groups' means and
    variances, so the markers do not depend on how many cells each group has
    (a generated set with other group proportions finds the same markers).
    In log1p space the difference of means is a log fold change.

    Returns
    -------
    dict
        group -> (t statistic per gene, log fold change per gene).

    Examples
    --------
    >>> x = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0], [0.0, 2.0]])
    >>> scores = marker_scores({"A": gene_stats(x[:2]), "B": gene_stats(x[2:])})
    >>> int(np.argmax(scores["A"][0])), int(np.argmax(scores["B"][0]))
    (0, 1)
    """
    groups = list(stats)
    out = {}
    for g in groups:
        rest = [stats[h] for h in groups if h != g]
        if not rest:
            continue
        rest_mean = np.mean([r.mean for r in rest], axis=0)
        rest_var = np.mean([r.var for r in rest], axis=0)
        rest_n = sum(r.n for r in rest)
        s = stats[g]
        lfc = s.mean - rest_mean
        out[g] = (welch_t(lfc, var_a=s.var, n_a=max(s.n, 1), var_b=rest_var, n_b=max(rest_n, 1)), lfc)
    return out


def welch_t(delta: np.ndarray, *, var_a: np.ndarray, n_a: float, var_b: np.ndarray, n_b: float
            ) -> np.ndarray:
    """Welch's t statistic of a difference of means ``delta`` between samples a and b.

    ``delta / sqrt(var_a / n_a + var_b / n_b)``, with a tiny constant under the root so
    genes constant in both samples rank by their difference instead of dividing by zero.
    The ranking of ``scanpy.tl.rank_genes_groups(method="t-test")``.

    Examples
    --------
    >>> float(welch_t(np.array([1.0]), var_a=np.array([2.0]), n_a=8, var_b=np.array([2.0]), n_b=8)[0])
    1.4142135623721411
    """
    return delta / np.sqrt(var_a / n_a + var_b / n_b + 1e-12)


def top_markers(t: np.ndarray, *, k: int) -> np.ndarray:
    """Indices of the ``k`` genes with the largest t statistic ``t`` (up-regulated markers).

    Examples
    --------
    >>> top_markers(np.array([0.5, 3.0, -2.0, 1.0]), k=2).tolist()
    [1, 3]
    """
    return np.argsort(-t, kind="stable")[:k]


def marker_metrics(ref: tuple[np.ndarray, np.ndarray], other: tuple[np.ndarray, np.ndarray],
                   k: int) -> dict[str, float]:
    """Overlap of the top-``k`` markers and Pearson of log fold changes over their union."""
    top_ref, top_other = top_markers(ref[0], k=k), top_markers(other[0], k=k)
    union = np.union1d(top_ref, top_other)
    return {
        "marker_overlap": len(np.intersect1d(top_ref, top_other)) / max(len(top_ref), 1),
        "marker_lfc_pearson": correlation(ref[1][union], other[1][union]),
    }
