"""Scores of predicted perturbation responses, beside two simple baselines.

For each held-out condition (cell type, drug, dose), with ``mu`` the real mean
expression, ``hat`` a prediction and ``ctrl`` the mean of the same cell type's
control cells:

- ``r2_all``: R2 of ``hat`` against ``mu`` over all genes (lenient: the cell type's
  baseline dominates it);
- ``r2_top``: the same on the condition's top DE genes, CPA's measure; DE genes are
  ranked by Welch's t statistic of the real cells against the controls (as
  ``scanpy.tl.rank_genes_groups(method="t-test")``), so a noisy gene with a large
  but uncertain difference does not crowd out a clear responder;
- ``r2_delta_top``: R2 of the change from control, ``hat - ctrl`` against
  ``mu - ctrl``, on the top DE genes: the strict one.

R2 is the coefficient of determination ``1 - SS_res / SS_tot`` (it can be negative).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData

from scdiff._errors import InputError
from scdiff.metrics import welch_t
from scdiff.perturb._baselines import _control_moments, _lookup, additive, nearest_dose
from scdiff.perturb._groups import Design, group_means, group_moments

__all__ = ["evaluate_perturbation", "r2_score", "summarize"]

#: The scores of each held-out condition (columns of :func:`evaluate_perturbation`).
SCORES = ["r2_all", "r2_top", "r2_delta_top"]


def r2_score(truth: np.ndarray, pred: np.ndarray) -> float:
    """Coefficient of determination of ``pred`` for ``truth`` (1 is perfect).

    Examples
    --------
    >>> r2_score(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0]))
    1.0
    """
    truth, pred = np.asarray(truth, dtype=float), np.asarray(pred, dtype=float)
    ss_tot = float(((truth - truth.mean()) ** 2).sum())
    return 1.0 - float(((truth - pred) ** 2).sum()) / ss_tot if ss_tot > 0 else float("nan")


def top_de_genes(delta: np.ndarray, var: np.ndarray, n: float, base_var: np.ndarray, n_base: float,
                 n_top: int) -> np.ndarray:
    """Indices of the ``n_top`` genes with the largest Welch t of a group against its control.

    ``delta`` is the group's mean minus the control's; ``var``/``base_var`` the two
    variances and ``n``/``n_base`` the cell counts (ties keep the gene order).
    """
    t_stat = welch_t(delta, var_a=var, n_a=n, var_b=base_var, n_b=n_base)
    return np.argsort(-np.abs(t_stat), kind="stable")[:n_top]


def evaluate_perturbation(
    real: AnnData,
    generated: AnnData | None,
    *,
    train: AnnData,
    design: Design | None = None,
    n_top: int = 20,
    baselines: bool = True,
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
        Which obs columns are the cell type(s), drug and dose (default
        ``cell_type``/``drug``/``dose``, control ``"control"``).
    n_top
        Number of top differentially expressed genes per condition.
    baselines
        Also score :func:`~scdiff.perturb.nearest_dose` and :func:`~scdiff.perturb.additive`.

    Returns
    -------
    DataFrame, one row per condition and method, with the design columns, ``method``,
    ``n_real``, ``r2_all``, ``r2_top`` and ``r2_delta_top``. :func:`summarize` averages it.

    Examples
    --------
    >>> import anndata as ad
    >>> train = ad.read_h5ad("data_examples/simulated_train.h5ad")
    >>> test = ad.read_h5ad("data_examples/simulated_test.h5ad")
    >>> held = test[test.obs["holdout"] == "dose"]
    >>> table = evaluate_perturbation(held, None, train=train)
    >>> sorted(table["method"].unique())
    ['additive', 'nearest_dose']
    """
    design = design or Design()
    if n_top < 1:
        raise InputError(f"n_top = {n_top} needs to be at least 1.")
    checked = [("real", real), ("train", train)]
    checked += [("generated", generated)] if generated is not None else []
    for what, a in checked:
        design.check(a, what)
        if list(a.var_names) != list(real.var_names):
            raise InputError(f"{what} has other genes than real; give both in the same gene space "
                             "(e.g. real[:, generated.var_names]).")
    mu, var, count, keys = group_moments(real, design)
    treated = [i for i, k in enumerate(keys) if k[-2] != design.control]
    if not treated:
        raise InputError(f"real holds no treated cells ({design.perturbation} != {design.control!r}); "
                         "nothing to score.")
    groups = pd.DataFrame([keys[i] for i in treated], columns=design.columns)
    preds: dict[str, np.ndarray] = {}
    if generated is not None:
        gen, gen_keys = group_means(generated, design)
        where = {k: j for j, k in enumerate(gen_keys)}
        lacking = [keys[i] for i in treated if keys[i] not in where]
        if lacking:
            raise InputError(f"generated lacks the condition {lacking[0]}; generate cells for every "
                             "condition of real (e.g. model.sample(like=real)).")
        preds["scdiff"] = np.stack([gen[where[keys[i]]] for i in treated])
    if baselines:
        preds["nearest_dose"] = nearest_dose(train, groups, design=design)
        preds["additive"] = additive(train, groups, design=design)
    ctrl = _control_moments(train, design)
    rows = []
    for row_i, i in enumerate(treated):
        base, base_var, n_base = _lookup(ctrl, keys[i][:-2], design)
        delta = mu[i] - base
        top = top_de_genes(delta, var[i], count[i], base_var, n_base, n_top)
        for method, pred in preds.items():
            hat = pred[row_i]
            rows.append({
                **dict(zip(design.columns, keys[i], strict=True)), "method": method,
                "n_real": int(count[i]),
                "r2_all": r2_score(mu[i], hat), "r2_top": r2_score(mu[i, top], hat[top]),
                "r2_delta_top": r2_score(delta[top], hat[top] - base[top]),
            })
    return pd.DataFrame(rows)


def summarize(table: pd.DataFrame, *, by: str | list[str] = "method") -> pd.DataFrame:
    """Mean of each metric of :func:`evaluate_perturbation`'s table per ``by``.

    Examples
    --------
    >>> t = pd.DataFrame({"method": ["a", "a"], "r2_all": [1.0, 0.5], "r2_top": [1.0, 0.0],
    ...                   "r2_delta_top": [0.5, 0.5]})
    >>> summarize(t)["r2_all"].tolist()
    [0.75]
    """
    return table.groupby(by, sort=False)[SCORES].mean()
