"""Scores of predicted perturbation responses, beside simple baselines.

For each held-out condition (covariates, perturbation, dose), with ``mu`` the real mean
expression, ``hat`` a prediction and ``ctrl`` the mean of the same covariates' training
control cells:

- ``r2_all``: R2 of ``hat`` against ``mu`` over all genes (lenient: the cell type's
  baseline dominates it);
- ``r2_top``: the same on the condition's top ``n_top`` DE genes, CPA's measure; DE
  genes are ranked by Welch's t statistic of the real cells against the controls (as
  ``scanpy.tl.rank_genes_groups(method="t-test")``), so a noisy gene with a large but
  uncertain difference does not crowd out a clear responder;
- ``r2_delta_top``: R2 of the change from control, ``hat - ctrl`` against
  ``mu - ctrl``, on the top DE genes: the strict one; ``pearson_delta_top`` is the
  Pearson correlation of the same two changes (blind to their scale);
- ``r2_delta_systema``, ``pearson_delta_systema``: the same two with the change
  measured from the mean perturbed state ``ref`` (the mean of all treated training
  cells of the covariates; where those have none, their control plus the mean change
  of all treated training cells) instead of from control, Systema's reference (Viñas
  Torné et al. 2025): what a prediction gets right beyond the response shared by all
  perturbations, which :func:`~scdiff.perturb.mean_perturbation` alone scores well on
  against control;
- ``de_overlap``: the share of the real top ``n_de`` DE genes among the prediction's
  ``n_de`` genes of largest ``|hat - ctrl|`` (one rule for every method, so baselines
  without variances are ranked alike; an unchanged gene is never a predicted DE gene);
- ``de_direction``: the share of the real top ``n_de`` DE genes where the predicted
  change has the real change's sign;
- ``energy``: the energy distance (``2 E|X - Y| - E|X - X'| - E|Y - Y'|``,
  :func:`scdiff.metrics.energy_distance`) of the method's cells to the real cells, on
  the top 50 PCs of a PCA fitted on training cells, at most 500 cells a side (seeded).
  A baseline predicts a mean, so its cells are the covariates' training controls
  shifted by its predicted change: the score then also sees the spread of the cells.

R2 is the coefficient of determination ``1 - SS_res / SS_tot`` (it can be negative);
a correlation with a constant side (e.g. ``no_change``) is NaN.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from anndata import AnnData

from scdiff._errors import InputError, arg
from scdiff.perturb._baselines import (
    _lookup,
    additive,
    mean_change,
    mean_perturbation,
    nearest_dose,
    no_change,
)
from scdiff.perturb._groups import Design, Measured, cells_by_group, group_codes, moments
from scdiff.perturb._linear import linear
from scdiff.perturb._scores import EnergyScorer, prediction_scores, r2_score, top_de_genes

__all__ = ["evaluate_perturbation", "r2_score", "summarize", "top_de_genes"]

#: The scores of each held-out condition (columns of :func:`evaluate_perturbation`).
SCORES = ["r2_all", "r2_top", "r2_delta_top", "pearson_delta_top", "r2_delta_systema",
          "pearson_delta_systema", "de_overlap", "de_direction", "energy"]

#: The baselines :func:`evaluate_perturbation` scores, by method name, in this order.
BASELINES = {"no_change": no_change, "mean_perturbation": mean_perturbation, "additive": additive,
             "linear": linear, "nearest_dose": nearest_dose}


def evaluate_perturbation(
    real: AnnData,
    generated: AnnData | None,
    *,
    train: AnnData,
    design: Design | None = None,
    n_top: int = 20,
    baselines: bool | Sequence[str] = True,
    features: Mapping[str, pd.DataFrame] | None = None,
    n_de: int = 50,
    energy: bool = True,
    group: str | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Score predicted means of every treated condition in ``real``, beside baselines.

    Parameters
    ----------
    real
        Held-out real cells (log-normalised ``X``); every treated condition in it is scored.
    generated
        Generated cells with the same obs columns, holding every scored condition
        (more cells per condition give a less noisy mean). ``None``: baselines only.
    train
        The measured (training) cells: controls for the change, and the baselines' data.
    design
        Which obs columns are the covariates, perturbation and dose (default
        ``cell_type``/``drug``/``dose``, control ``"control"``).
    n_top
        Number of top differentially expressed genes per condition (the R2 and Pearson scores).
    baselines
        Also score the baselines (``True``: all of ``BASELINES``: ``no_change``,
        ``mean_perturbation``, ``additive``, ``linear``, ``nearest_dose``), or those named.
    features
        The perturbations' descriptors for :func:`~scdiff.perturb.linear`.
    n_de
        Number of top DE genes of ``de_overlap`` and ``de_direction``.
    energy
        Score the energy distance of cells (``False``: the column is NaN, and faster).
    group
        An obs column of ``real`` (e.g. ``"holdout"``) each row carries, the value of the
        condition's first cell, so ``summarize(table, by=[group, "method"])`` works.
    seed
        Seeds the cells the energy distance subsamples.

    Returns
    -------
    DataFrame, one row per condition and method, with the design columns (``group``),
    ``method``, ``n_real`` and the ``SCORES``: ``r2_all``, ``r2_top``, ``r2_delta_top``,
    ``pearson_delta_top``, ``r2_delta_systema``, ``pearson_delta_systema``, ``de_overlap``,
    ``de_direction`` and ``energy``. :func:`summarize` averages it.

    Examples
    --------
    >>> import anndata as ad
    >>> train = ad.read_h5ad("data_examples/simulated_train.h5ad")
    >>> test = ad.read_h5ad("data_examples/simulated_test.h5ad")
    >>> held = test[test.obs["holdout"] != "iid"]
    >>> table = evaluate_perturbation(held, None, train=train, group="holdout", energy=False)
    >>> sorted(table["method"].unique())
    ['additive', 'linear', 'mean_perturbation', 'nearest_dose', 'no_change']
    >>> summarize(table, by=["holdout", "method"]).shape
    (10, 9)
    """
    design = design or Design()
    methods = _check(real, generated, train, design, n_top=n_top, n_de=n_de, group=group,
                     baselines=baselines)
    codes, keys = group_codes(real, design)
    mu, var, count = moments(real.X, codes, len(keys))
    treated = [i for i, k in enumerate(keys) if k[-2] != design.control]
    if not treated:
        raise InputError(f"real holds no treated cells ({design.perturbation} != {design.control!r}); "
                         "nothing to score.")
    groups = pd.DataFrame([keys[i] for i in treated], columns=design.columns)
    preds, gen_cells = _predictions(generated, [keys[i] for i in treated], design)
    m = Measured.of(train, design)  # the training groups, read once for every baseline
    for name in methods:
        extra = {"features": features} if name == "linear" else {}
        preds[name] = BASELINES[name](m, groups, design=design, **extra)
    ctrl = m.control_moments()
    refs: dict[tuple, np.ndarray] = {}  # the mean perturbed state of each covariate combination
    scorer = EnergyScorer(train, _control_cells(m), seed=seed) if energy else None
    cells = cells_by_group(codes, len(keys))
    rows = []
    for row_i, i in enumerate(treated):
        cov = keys[i][:-2]
        base, base_var, n_base = _lookup(ctrl, cov, design)
        top = top_de_genes(mu[i] - base, var[i], count[i], base_var, n_base, max(n_top, n_de))
        if cov not in refs:
            refs[cov] = base + mean_change(m, cov, by_cells=True)
        ref = refs[cov]
        real_cloud = scorer.cloud(real, cells[i], "real", keys[i]) if scorer else None
        label = dict(zip(design.columns, keys[i], strict=True))
        if group is not None:
            label[group] = real.obs[group].iloc[cells[i][0]]
        for method, pred in preds.items():
            scores = prediction_scores(mu[i], pred[row_i], base, ref, top[:n_top], top[:n_de])
            scores["energy"] = float("nan")
            if scorer is not None:
                cloud = (scorer.cloud(generated, gen_cells[row_i], "generated", keys[i])
                         if method == "scdiff" else scorer.shifted(cov, pred[row_i] - base))
                scores["energy"] = scorer.energy(real_cloud, cloud)
            rows.append({**label, "method": method, "n_real": int(count[i]), **scores})
    return pd.DataFrame(rows)


def _check(real: AnnData, generated: AnnData | None, train: AnnData, design: Design, *, n_top: int,
           n_de: int, group: str | None, baselines: bool | Sequence[str]) -> list[str]:
    """Refuse inputs that cannot be scored; the baselines to run."""
    for name, n in (("n_top", n_top), ("n_de", n_de)):
        if n < 1:
            raise InputError(f"{arg(name, n)} needs to be at least 1.")
    checked = [("real", real), ("train", train)]
    checked += [("generated", generated)] if generated is not None else []
    for what, a in checked:
        design.check(a, what)
        if list(a.var_names) != list(real.var_names):
            raise InputError(f"{what} has other genes than real; give both in the same gene space "
                             "(e.g. real[:, generated.var_names]).")
    if group is not None and group not in real.obs.columns:
        raise InputError(f"{arg('group', group)} is not an obs column of real; its columns are: "
                         f"{', '.join(map(str, real.obs.columns))}.")
    if isinstance(baselines, bool):
        return list(BASELINES) if baselines else []
    names = [baselines] if isinstance(baselines, str) else list(baselines)
    unknown = [b for b in names if b not in BASELINES]
    if unknown:
        raise InputError(f"{arg('baselines')} names {unknown[0]!r}, which is not a baseline; "
                         f"choose from {', '.join(BASELINES)} (or True for all).")
    return names


def _predictions(generated: AnnData | None, asked: list[tuple],
                 design: Design) -> tuple[dict[str, np.ndarray], list[np.ndarray] | None]:
    """scdiff's predicted means of the asked groups and the generated cells of each."""
    if generated is None:
        return {}, None
    codes, keys = group_codes(generated, design)
    means = moments(generated.X, codes, len(keys))[0]
    where = {(k[:-2], design.key_parts(k)): j for j, k in enumerate(keys)}
    lacking = [k for k in asked if (k[:-2], design.key_parts(k)) not in where]
    if lacking:
        raise InputError(f"generated lacks the condition {lacking[0]}; generate cells for every "
                         "condition of real (e.g. model.sample(like=real)).")
    hit = [where[(k[:-2], design.key_parts(k))] for k in asked]
    cells = cells_by_group(codes, len(keys))
    return {"scdiff": means[hit]}, [cells[j] for j in hit]


def _control_cells(m: Measured) -> dict[tuple, np.ndarray]:
    """The training control cells of each covariate combination."""
    ctrl = [j for j, k in enumerate(m.keys) if k[-2] == m.design.control]
    out: dict[tuple, list[int]] = {}
    for j in ctrl:
        out.setdefault(m.keys[j][:-2], []).append(j)
    return {cov: np.flatnonzero(np.isin(m.codes, js)) for cov, js in out.items()}


def summarize(table: pd.DataFrame, *, by: str | list[str] = "method") -> pd.DataFrame:
    """Mean of each metric of :func:`evaluate_perturbation`'s table per ``by``.

    The columns are the ``SCORES`` the table has (NaN scores are left out of a mean).

    Examples
    --------
    >>> t = pd.DataFrame({"method": ["a", "a"], "r2_all": [1.0, 0.5], "r2_top": [1.0, 0.0],
    ...                   "r2_delta_top": [0.5, 0.5]})
    >>> summarize(t)["r2_all"].tolist()
    [0.75]
    """
    return table.groupby(by, sort=False)[[c for c in SCORES if c in table.columns]].mean()
