"""Example data: a dose-response simulator, a drug-screen simulator (drug features, pairs)
and a gene-programmes simulator, with known ground truth, and a clinical table of mixed
columns.

The bundled real examples (PBMC 68k reduced, split 70/30) and a simulated
data set live in the repository's ``data_examples/`` folder.
"""

from scdiff.datasets._clinical import simulate_clinical
from scdiff.datasets._programmes import simulate_programmes
from scdiff.datasets._screen import screen_features, screen_true_mean, simulate_screen
from scdiff.datasets._simulate import simulate
from scdiff.datasets._truth import hill_curve, sample_truth, true_mean

__all__ = ["hill_curve", "sample_truth", "screen_features", "screen_true_mean", "simulate",
           "simulate_clinical", "simulate_programmes", "simulate_screen", "true_mean"]
