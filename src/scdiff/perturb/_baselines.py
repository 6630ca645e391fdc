"""Simple perturbation predictors any model should beat, all computed on training cells.

- :func:`no_change`: the covariates' control mean (the perturbation does nothing).
- :func:`mean_perturbation`: control plus the mean change from control over the
  covariates' treated training groups, the "mean of training perturbations" of
  Ahlmann-Eltze et al. 2025 (Nat. Methods), hard to beat on unseen perturbations.
- :func:`additive`: control plus each drug's effect at that dose (nearest measured
  dose); a set adds its members' single effects.
- :func:`nearest_dose`: the measured mean of the same condition at the nearest
  measured dose (on the ``log1p`` scale the model uses); a condition never measured
  falls back to its control (dose 0 of every drug).
- :func:`~scdiff.perturb.linear` (in ``_linear``): a ridge regression of the change on
  the covariates and the drugs' features.

All return mean expression profiles, one row per asked group.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from anndata import AnnData

from scdiff._errors import InputError
from scdiff.perturb._groups import Design, Measured, measured, requests

__all__ = ["additive", "mean_perturbation", "nearest_dose", "no_change"]


def _nearest(available: np.ndarray, dose: float) -> float:
    return float(available[np.argmin(np.abs(np.log1p(available) - np.log1p(dose)))])


def nearest_dose(train: AnnData | Measured, groups: pd.DataFrame, *, design: Design) -> np.ndarray:
    """Mean of training cells of the same condition at the nearest measured dose.

    For a set the nearest is the measured dose combination of the same members nearest
    on the ``log1p`` scale (Euclidean over the members).

    Parameters
    ----------
    train
        Measured (training) cells, log-normalised expression in ``X`` (or their groups,
        :class:`~scdiff.perturb._groups.Measured`, which :func:`evaluate_perturbation`
        reads once for every baseline).
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
    m = measured(train, design)
    seen: dict[tuple, list[int]] = {}  # (covariates, members) -> groups
    for j in m.treated(with_control=False):
        seen.setdefault((m.keys[j][:-2], tuple(n for n, _ in m.parts[j])), []).append(j)
    out = np.empty((len(groups), m.means.shape[1]))
    for i, (cov, parts) in enumerate(requests(groups, design)):
        hit = seen.get((cov, tuple(n for n, _ in parts)), [])
        if hit and parts:
            want = np.log1p([d for _, d in parts])
            far = [np.linalg.norm(np.log1p([d for _, d in m.parts[j]]) - want) for j in hit]
            out[i] = m.means[hit[int(np.argmin(far))]]
        else:
            out[i] = _lookup(m.control, cov, design)
    return out


def additive(train: AnnData | Measured, groups: pd.DataFrame, *, design: Design) -> np.ndarray:
    """Control of the covariates + the drug's mean effect (nearest measured dose).

    A single drug's effect at a dose is the measured mean minus the same covariates'
    control, averaged over the covariates where the drug was measured at its nearest
    measured dose. A set adds its members' single effects, each at its own dose: on the
    same covariates where the member was measured alone there, else averaged as above;
    a member never measured alone adds nothing, and an unseen drug gets the control.

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
    m = measured(train, design)
    singles: dict[str, list[int]] = {}
    for j in m.treated():
        if len(m.parts[j]) == 1:
            singles.setdefault(m.parts[j][0][0], []).append(j)
    out = np.empty((len(groups), m.means.shape[1]))
    for i, (cov, parts) in enumerate(requests(groups, design)):
        out[i] = _lookup(m.control, cov, design).copy()
        for name, dose in parts:
            out[i] += _single_effect(m, singles.get(name, []), dose, cov, own=len(parts) > 1)
    return out


def _single_effect(m: Measured, hit: list[int], dose: float, cov: tuple, *, own: bool):
    """One drug's measured change at its nearest dose among the groups ``hit`` (0 if none);
    with ``own``, only those of the covariates ``cov`` where there are any."""
    if own and any(m.keys[j][:-2] == cov for j in hit):
        hit = [j for j in hit if m.keys[j][:-2] == cov]
    if not hit:
        return 0.0
    near = _nearest(np.array([m.parts[j][0][1] for j in hit]), dose)
    return np.mean([m.change(j) for j in hit if m.parts[j][0][1] == near], axis=0)


def no_change(train: AnnData | Measured, groups: pd.DataFrame, *, design: Design) -> np.ndarray:
    """The covariates' control mean: a prediction that the perturbation does nothing.

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
    >>> no_change(train, groups, design=Design()).shape
    (1, 500)
    """
    m = measured(train, design)
    return np.stack([_lookup(m.control, cov, design) for cov, _ in requests(groups, design)])


def mean_perturbation(train: AnnData | Measured, groups: pd.DataFrame, *, design: Design) -> np.ndarray:
    """Control + the mean change from control over the training perturbations.

    The mean runs over the treated training groups (each group counts once) of the same
    covariates, or of all covariates where those have no treated group: the "mean of
    training perturbations" baseline of Ahlmann-Eltze et al. 2025. It predicts the same
    change for every perturbation, so it scores the shared response, not the specific one.

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
    >>> mean_perturbation(train, groups, design=Design()).shape
    (1, 500)
    """
    m = measured(train, design)
    return np.stack([_lookup(m.control, cov, design) + mean_change(m, cov, by_cells=False)
                     for cov, _ in requests(groups, design)])


def mean_change(m: Measured, cov: tuple, *, by_cells: bool) -> np.ndarray:
    """Mean change from control of the treated groups of ``cov`` (of all covariates where
    ``cov`` has none), each group weighted by its cells (``by_cells``) or once; 0 if none.

    With ``by_cells`` the control plus this change is the mean of all treated cells of
    ``cov``: the mean perturbed state that Systema measures changes from.
    """
    treated = m.treated()
    mine = [j for j in treated if m.keys[j][:-2] == tuple(cov)] or treated
    if not mine:
        return np.zeros(m.means.shape[1])
    weights = m.counts[mine] if by_cells else np.ones(len(mine))
    return np.average(np.stack([m.change(j) for j in mine]), axis=0, weights=weights)


def _control_moments(train: AnnData, design: Design) -> dict[tuple, tuple[np.ndarray, np.ndarray, float]]:
    return Measured.of(train, design).control_moments()


def _lookup(ctrl: dict, cov: Sequence[str], design: Design):
    if tuple(cov) not in ctrl:
        raise InputError(f"no {design.perturbation}={design.control!r} cells of "
                         f"{dict(zip(design.covariates, cov, strict=True))} in the training data; "
                         "perturbation effects are measured against those controls.")
    return ctrl[tuple(cov)]
