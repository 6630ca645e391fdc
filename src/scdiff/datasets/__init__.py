"""Example data: a dose-response simulator and a gene-programmes simulator, with known
ground truth, and a clinical table of mixed columns.

The bundled real examples (PBMC 68k reduced, split 70/30) and a simulated
data set live in the repository's ``data_examples/`` folder.
"""

from scdiff.datasets._clinical import simulate_clinical
from scdiff.datasets._programmes import simulate_programmes
from scdiff.datasets._simulate import simulate
from scdiff.datasets._truth import hill_curve, sample_truth, true_mean

__all__ = ["hill_curve", "sample_truth", "simulate", "simulate_clinical", "simulate_programmes",
           "true_mean"]
