"""Two simple perturbation predictors any model should beat.

- :func:`nearest_dose`: the measured mean of the same condition at the nearest
  measured dose (on the ``log1p`` scale the model uses); a combination never
  measured falls back to its control (dose 0 of every drug).
- :func:`additive`: control of the cell type plus the drug's effect at that dose
  (nearest measured dose) averaged over the cell types where it was measured.

Both return mean expression profiles, one row per asked group.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from anndata import AnnData

from scdiff._errors import InputError
from scdiff.perturb._groups import Design, group_means, group_moments

__all__ = ["additive", "nearest_dose"]


def _nearest(available: np.ndarray, dose: float) -> float:
    return float(available[np.argmin(np.abs(np.log1p(available) - np.log1p(dose)))])


def nearest_dose(train: AnnData, groups: pd.DataFrame, *, design: Design) -> np.ndarray:
    """Mean of training cells of the same condition at the nearest measured dose.

    Parameters
    ----------
    train
        Measured (training) cells, log-normalised expression in ``X``.
    groups
        The conditions to predict: columns ``design.covariates``, ``design.perturbation``
        and ``design.dose``.
    design
        Which obs columns hold the cell type(s), drug and dose, and the control's name.

    Returns
    -------
    Array ``(len(groups), n_genes)``.

    Examples
    --------
    >>> import anndata as ad
    >>> from scdiff.perturb import Design
    >>> train = ad.read_h5ad("data_examples/simulated_train.h5ad")
    >>> groups = pd.DataFrame({"cell_type": ["type_0"], "drug": ["drugA"], "dose": [50.0]})
    >>> nearest_dose(train, groups, design=Design()).shape
    (1, 500)
    """
    means, keys = group_means(train, design)
    ctrl = _control_means(means, keys, design)
    out = np.empty((len(groups), train.n_vars))
    for i, (cov, drug, dose) in enumerate(_requests(groups, design)):
        hit = [(k, j) for j, k in enumerate(keys) if k[:-1] == (*cov, drug)]
        if hit and drug != design.control:
            doses = np.array([k[-1] for k, _ in hit])
            near = _nearest(doses, dose)
            out[i] = means[next(j for k, j in hit if k[-1] == near)]
        else:
            out[i] = _lookup(ctrl, cov, design)
    return out


def additive(train: AnnData, groups: pd.DataFrame, *, design: Design) -> np.ndarray:
    """Control of the cell type + the drug's mean effect (nearest measured dose).

    The effect at a dose is the measured mean minus the same cell type's control,
    averaged over the cell types where the drug was measured at that dose.

    Parameters
    ----------
    train, groups, design
        As for :func:`nearest_dose`.

    Returns
    -------
    Array ``(len(groups), n_genes)``.

    Examples
    --------
    >>> import anndata as ad
    >>> from scdiff.perturb import Design
    >>> train = ad.read_h5ad("data_examples/simulated_train.h5ad")
    >>> groups = pd.DataFrame({"cell_type": ["type_2"], "drug": ["drugB"], "dose": [100.0]})
    >>> additive(train, groups, design=Design()).shape
    (1, 500)
    """
    means, keys = group_means(train, design)
    ctrl = _control_means(means, keys, design)
    out = np.empty((len(groups), train.n_vars))
    for i, (cov, drug, dose) in enumerate(_requests(groups, design)):
        base = _lookup(ctrl, cov, design)
        hit = [(k, j) for j, k in enumerate(keys) if k[-2] == drug and k[:-2] in ctrl]
        if drug == design.control or not hit:
            out[i] = base
            continue
        near = _nearest(np.array([k[-1] for k, _ in hit]), dose)
        effects = [means[j] - ctrl[k[:-2]] for k, j in hit if k[-1] == near]
        out[i] = base + np.mean(effects, axis=0)
    return out


def _requests(groups: pd.DataFrame, design: Design):
    """(covariates, drug, dose) of each asked group, as the group keys spell them."""
    for row in groups.itertuples(index=False):
        yield (tuple(str(getattr(row, c)) for c in design.covariates),
               str(getattr(row, design.perturbation)), float(getattr(row, design.dose)))


def _control_means(means: np.ndarray, keys: list, design: Design) -> dict[tuple, np.ndarray]:
    """The control group's mean per covariate combination, from :func:`group_means`' output."""
    return {k[:-2]: means[j] for j, k in enumerate(keys) if k[-2] == design.control}


def _control_moments(train: AnnData, design: Design) -> dict[tuple, tuple[np.ndarray, np.ndarray, float]]:
    means, var, counts, keys = group_moments(train, design)
    return {k[:-2]: (means[j], var[j], float(counts[j]))
            for j, k in enumerate(keys) if k[-2] == design.control}


def _lookup(ctrl: dict, cov: Sequence[str], design: Design):
    if tuple(cov) not in ctrl:
        raise InputError(f"no {design.perturbation}={design.control!r} cells of "
                         f"{dict(zip(design.covariates, cov, strict=True))} in the training data; "
                         "perturbation effects are measured against those controls.")
    return ctrl[tuple(cov)]
