"""Metrics: generated cells scored against real ones, always beside a real-vs-real floor.

- :func:`evaluate` scores one generated set (a tidy table of metrics); it is also
  ``scdiff.evaluate``.
- :func:`benchmark_table` lines up several methods' scores.
- :mod:`scdiff.metrics.baselines` holds simple generators to compare with.
- The building blocks the plots share: :func:`fit_pca`, :func:`gene_stats`,
  :func:`marker_scores`, :func:`welch_t`, :func:`correlation`.

The report that gathers a table and its figures is :func:`scdiff.write_report`.
"""

from scdiff.metrics import baselines
from scdiff.metrics._distances import energy_distance, median_bandwidth, mmd_rbf, wasserstein_pcs
from scdiff.metrics._evaluate import evaluate
from scdiff.metrics._markers import marker_scores, top_markers, welch_t
from scdiff.metrics._moments import GeneStats, correlation, gene_stats
from scdiff.metrics._pca import PCA, fit_pca
from scdiff.metrics._table import METRICS, OVERALL, benchmark_table
from scdiff.metrics._tabular import TABLE_METRICS, evaluate_table

__all__ = [
    "METRICS", "OVERALL", "PCA", "TABLE_METRICS", "GeneStats", "baselines", "benchmark_table",
    "correlation", "energy_distance", "evaluate", "evaluate_table", "fit_pca", "gene_stats",
    "marker_scores", "median_bandwidth", "mmd_rbf", "top_markers", "wasserstein_pcs", "welch_t",
]
