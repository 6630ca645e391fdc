"""Evaluation of generated cells against real ones, always beside a real-vs-real floor.

- :func:`evaluate` scores one generated set (a tidy table of metrics); the
  module itself is callable, so ``scdiff.evaluate(real, fake, ...)`` runs it.
- :func:`benchmark_table` lines up several methods' scores.
- :func:`write_report` writes a readable report with tables and figures.
- :mod:`scdiff.evaluate.baselines` holds simple generators to compare with.
"""

import sys
import types

from scdiff.evaluate import baselines
from scdiff.evaluate._distances import energy_distance, mmd_rbf, wasserstein_pcs
from scdiff.evaluate._evaluate import evaluate
from scdiff.evaluate._report import write_report
from scdiff.evaluate._table import METRICS, benchmark_table

__all__ = [
    "METRICS",
    "baselines",
    "benchmark_table",
    "energy_distance",
    "evaluate",
    "mmd_rbf",
    "wasserstein_pcs",
    "write_report",
]


class _CallableModule(types.ModuleType):
    """``scdiff.evaluate(...)`` calls :func:`evaluate`; the submodules stay reachable."""

    def __call__(self, *args, **kwargs):
        return evaluate(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
