"""Plots that compare generated cells with real ones, scanpy style (``ax``, ``show``, ``save``).

matplotlib is imported only when a function draws.
"""

from scdiff.pl._compare import compare
from scdiff.pl._dose_response import dose_response
from scdiff.pl._loss import loss
from scdiff.pl._markers import marker_dotplot
from scdiff.pl._metrics import metric_bars
from scdiff.pl._scatter import mean_scatter

__all__ = ["compare", "dose_response", "loss", "marker_dotplot", "mean_scatter", "metric_bars"]
