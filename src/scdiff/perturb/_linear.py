"""A linear baseline: ridge regression of the change from control on what is known of a
condition, the kind of simple model that matches deep ones on unseen perturbations
(Ahlmann-Eltze et al. 2025).

Each treated training group is one sample: its mean change from the control of its
covariates (all genes) against

``x = [one-hot covariates, sum_m f_m * g(d_m), sum_m f_m]``

over the members ``m`` of its perturbation (one, or a set), with ``g(d) = log1p(d) /
log1p(max training dose)`` and ``f_m`` the member's features: a row of a feature table
standardised over its rows, or without one a one-hot over the training members (an
unseen member then has none: the model predicts its covariates' mean response).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from anndata import AnnData
from sklearn.linear_model import RidgeCV

from scdiff._errors import InputError, arg
from scdiff.data._features import numeric_table, read_table
from scdiff.perturb._baselines import _lookup
from scdiff.perturb._groups import Design, Measured, Parts, measured, requests

__all__ = ["linear"]

#: The ridge penalties RidgeCV chooses from by leave-one-out error.
ALPHAS = np.logspace(-2, 3, 12)


def linear(train: AnnData | Measured, groups: pd.DataFrame, *, design: Design,
           features: Mapping[str, pd.DataFrame] | None = None) -> np.ndarray:
    """Control + a ridge regression's change, fitted on the training groups' changes.

    Parameters
    ----------
    train, groups, design
        As for :func:`~scdiff.perturb.nearest_dose`.
    features
        Descriptors of the perturbations: ``{design.perturbation: table}``, the table
        indexed by perturbation (every member of a training or asked set), its columns
        numbers (e.g. fingerprint bits or target scores); or the path of such a ``.csv``
        or ``.parquet`` file. ``None``: a one-hot per training perturbation, which can
        only give an unseen one the covariates' mean response.

    Returns
    -------
    Array ``(len(groups), n_genes)``.

    Examples
    --------
    >>> import anndata as ad
    >>> from scdiff.perturb import Design
    >>> train = ad.read_h5ad("data_examples/simulated_train.h5ad")
    >>> groups = pd.DataFrame({"cell_type": ["type_2"], "drug": ["drugB"], "dose": [100.0]})
    >>> table = pd.DataFrame({"logp": [1.0, 3.0]}, index=["drugA", "drugB"])
    >>> linear(train, groups, design=Design(), features={"drug": table}).shape
    (1, 500)
    """
    m = measured(train, design)
    asked = requests(groups, design)
    rows = m.treated()
    base = np.stack([_lookup(m.control, cov, design) for cov, _ in asked])
    if not rows:
        return base
    covs = sorted(m.control)
    table, width = _feature_table(features, design, [m.parts[j] for j in rows], [p for _, p in asked])
    top = max(d for j in rows for _, d in m.parts[j])
    scale = float(np.log1p(top)) if top > 0 else 1.0

    def encode(cov: tuple, parts: Parts) -> np.ndarray:
        onehot = np.array([cov == c for c in covs], dtype=float)
        f = [table.get(n, np.zeros(width)) for n, _ in parts]
        dosed = sum((fm * np.log1p(d) / scale for fm, (_, d) in zip(f, parts, strict=True)), np.zeros(width))
        return np.concatenate([onehot, dosed, sum(f, np.zeros(width))])

    X = np.stack([encode(m.keys[j][:-2], m.parts[j]) for j in rows])
    Y = np.stack([m.change(j) for j in rows])
    if len(rows) < 2:  # nothing to regress on: the one measured change
        change = np.repeat(Y, len(asked), axis=0)
    else:
        change = RidgeCV(alphas=ALPHAS).fit(X, Y).predict(np.stack([encode(cov, p) for cov, p in asked]))
    return base + change * np.array([bool(p) for _, p in asked])[:, None]  # a control: no change


def _feature_table(features: Mapping[str, pd.DataFrame] | None, design: Design,
                   trained: list[Parts], asked: list[Parts]) -> tuple[dict[str, np.ndarray], int]:
    """Each member's feature vector, and their length."""
    if features is None:
        names = sorted({n for p in trained for n, _ in p})
        eye = np.eye(len(names))
        return {n: eye[i] for i, n in enumerate(names)}, len(names)
    if not isinstance(features, Mapping) or design.perturbation not in features:
        raise InputError(f"features has no table for {design.perturbation!r}; pass "
                         f"{arg('features')} as {{{design.perturbation!r}: table}}.")
    what = f"{arg('features')}[{design.perturbation!r}]"
    frame = numeric_table(read_table(features[design.perturbation], what=what), what)
    values = frame.to_numpy(dtype=float)
    index = [str(i) for i in frame.index]
    missing = sorted({n for p in trained + asked for n, _ in p} - set(index))
    if missing:
        raise InputError(f"{design.perturbation} {missing[0]!r} has no row in {what}; add a row for "
                         "every perturbation trained on or asked for (the control may be left out).")
    std = values.std(axis=0)
    values = (values - values.mean(axis=0)) / np.where(std > 0, std, 1.0)
    return dict(zip(index, values, strict=True)), values.shape[1]
