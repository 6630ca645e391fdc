"""Perturbation analyses above the model: dose-response curves of a trained model, scores
of held-out doses, combinations and unseen perturbations, and the simple baselines they
are compared with. (The curves are drawn by :func:`scdiff.pl.dose_response`.)

- :func:`evaluate_perturbation` scores each held-out condition's predicted mean (R2 and
  Pearson of the change from control and from the mean perturbed state, Systema's
  reference, on the top DE genes; the overlap and direction of the DE genes) and the
  energy distance of its cells; :func:`summarize` averages the table.
- Baselines, each a mean profile per condition from the training cells:
  :func:`no_change`, :func:`mean_perturbation` (the mean training perturbation),
  :func:`additive` (a set: its members' single effects added), :func:`linear` (a ridge
  regression on the covariates and the drugs' features) and :func:`nearest_dose`.
- A perturbation may be a set, ``drug="drugA+drugB"`` with ``dose="10+100"`` (one dose
  per member) or a numeric dose every member got; :class:`Design` names the columns.

Examples
--------
>>> import scdiff
>>> model = scdiff.ConditionalDiffusion(train, condition=["cell_type", "drug"], dose="dose")  # doctest: +SKIP
>>> model.train()  # doctest: +SKIP
>>> fake = model.sample(like=test)  # doctest: +SKIP
>>> table = scdiff.perturb.evaluate_perturbation(test, fake, train=train, group="holdout")  # doctest: +SKIP
>>> scdiff.perturb.summarize(table, by=["holdout", "method"])  # doctest: +SKIP
"""

from scdiff.perturb._baselines import additive, mean_perturbation, nearest_dose, no_change
from scdiff.perturb._dose_response import dose_response
from scdiff.perturb._groups import Design
from scdiff.perturb._linear import linear
from scdiff.perturb._metrics import evaluate_perturbation, r2_score, summarize

__all__ = [
    "Design", "additive", "dose_response", "evaluate_perturbation", "linear", "mean_perturbation",
    "nearest_dose", "no_change", "r2_score", "summarize",
]
