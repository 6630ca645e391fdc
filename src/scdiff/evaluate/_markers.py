"""Marker genes of each group, from per-group gene moments (numpy only)."""

from __future__ import annotations

import numpy as np

from scdiff.evaluate._moments import GeneStats, _corr


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
        se = np.sqrt(s.var / max(s.n, 1) + rest_var / max(rest_n, 1)) + 1e-9
        out[g] = (lfc / se, lfc)
    return out


def top_markers(t: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` genes with the largest t statistic (up-regulated markers)."""
    return np.argsort(-t, kind="stable")[:k]


def marker_metrics(ref: tuple[np.ndarray, np.ndarray], other: tuple[np.ndarray, np.ndarray],
                   k: int) -> dict[str, float]:
    """Overlap of the top-``k`` markers and Pearson of log fold changes over their union."""
    top_ref, top_other = top_markers(ref[0], k), top_markers(other[0], k)
    union = np.union1d(top_ref, top_other)
    return {
        "marker_overlap": len(np.intersect1d(top_ref, top_other)) / max(len(top_ref), 1),
        "marker_lfc_pearson": _corr(ref[1][union], other[1][union]),
    }
