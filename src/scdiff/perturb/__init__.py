"""Perturbation analyses above the model: dose-response curves of a trained model, scores
of held-out doses and combinations, and the simple baselines they are compared with.
(The curves are drawn by :func:`scdiff.pl.dose_response`.)

Examples
--------
>>> import scdiff
>>> model = scdiff.ConditionalDiffusion(train, condition=["cell_type", "drug"], dose="dose")  # doctest: +SKIP
>>> model.train()  # doctest: +SKIP
>>> fake = model.sample(like=test)  # doctest: +SKIP
>>> table = scdiff.perturb.evaluate_perturbation(test, fake, train=train)  # doctest: +SKIP
>>> scdiff.perturb.summarize(table)  # doctest: +SKIP
"""

from scdiff.perturb._baselines import additive, nearest_dose
from scdiff.perturb._dose_response import dose_response
from scdiff.perturb._groups import Design
from scdiff.perturb._metrics import evaluate_perturbation, r2_score, summarize

__all__ = [
    "Design", "additive", "dose_response", "evaluate_perturbation", "nearest_dose",
    "r2_score", "summarize",
]
