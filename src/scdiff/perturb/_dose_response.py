"""Dose-response curves of a trained model: generated mean expression across a dose grid."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from scdiff._errors import InputError, arg

if TYPE_CHECKING:
    from scdiff.model import ConditionalDiffusion

__all__ = ["dose_grid", "dose_response"]


def dose_grid(model: ConditionalDiffusion, dose_key: str, n: int = 12) -> list[float]:
    """0 and ``n - 1`` log-spaced doses from the smallest to the largest positive training dose.

    Examples
    --------
    >>> model = scdiff.ConditionalDiffusion.load("runs/sim")  # doctest: +SKIP
    >>> dose_grid(model, "dose", n=4)  # doctest: +SKIP
    [0.0, 10.0, 100.0, 1000.0]
    """
    i = model.encoder.dose_keys.index(dose_key)
    values = np.asarray(model.encoder.dose_values[i], dtype=float)
    lo, hi = float(values.min()), float(model.encoder.dose_max[i])
    if lo < 0:  # a covariate, not a dose: an even grid over its range
        return [float(v) for v in np.linspace(lo, hi, n)]
    pos = values[values > 0]
    if pos.size == 0:
        return [0.0]
    grid = np.geomspace(pos.min(), hi, n - 1) if hi > pos.min() else np.array([hi])
    return [0.0, *[float(f"{v:.4g}") for v in grid]]


def dose_response(
    model: ConditionalDiffusion,
    *,
    condition: Mapping[str, str] | None = None,
    dose_key: str | None = None,
    doses: Sequence[float] | None = None,
    genes: Sequence[str] | int = 10,
    n_cells: int = 200,
    guidance: float | Mapping[str, float] = 1.0,
    seed: int = 0,
    device: str = "auto",
) -> pd.DataFrame:
    """Generated mean expression of chosen genes at each dose of a grid.

    Parameters
    ----------
    model
        A trained :class:`~scdiff.ConditionalDiffusion` with at least one dose.
    condition
        The fixed categorical values (e.g. ``{"cell_type": "A549", "drug": "X"}``);
        attributes not named follow training proportions.
    dose_key
        The dose to vary; default the model's only one.
    doses
        The grid; default 0 and 11 log-spaced doses over the training range
        (:func:`dose_grid`). Doses beyond the range warn (the model extrapolates).
    genes
        Gene names, or a number: that many genes that change most over the grid.
    n_cells
        Cells generated per dose (the mean's noise falls as ``1 / sqrt(n_cells)``).
    guidance, seed, device
        As for :meth:`~scdiff.ConditionalDiffusion.sample`.

    Returns
    -------
    DataFrame indexed by dose (named ``dose_key``), one column per gene: the mean
    log-normalised expression of the generated cells.

    Examples
    --------
    >>> import scdiff
    >>> model = scdiff.ConditionalDiffusion.load("runs/sim")  # doctest: +SKIP
    >>> table = scdiff.perturb.dose_response(
    ...     model, condition={"cell_type": "type_0", "drug": "drugA"}, genes=5)  # doctest: +SKIP
    >>> table.shape  # doctest: +SKIP
    (12, 5)
    """
    enc = model.encoder
    dose_key = _dose_key(enc.dose_keys, dose_key)
    grid = [float(d) for d in (dose_grid(model, dose_key) if doses is None else doses)]
    if not grid:
        raise InputError("doses is empty; give at least one dose.")
    if n_cells < 1:
        raise InputError(f"{arg('n_cells', n_cells)} needs to be at least 1.")
    if not isinstance(genes, (int, np.integer)):
        unknown = [g for g in genes if g not in model.genes]
        if unknown:
            raise InputError(f"gene(s) {unknown[:3]} are not among the model's genes.")
    rng = np.random.default_rng(seed)
    frame = pd.concat(
        [enc.request_obs(n_cells, condition, {dose_key: d}, rng) for d in grid], ignore_index=True
    )
    fake = model.sample(like=frame, guidance=guidance, seed=seed, device=device)
    X = np.asarray(fake.X)
    means = X.reshape(len(grid), n_cells, -1).mean(axis=1)
    table = pd.DataFrame(means, index=pd.Index(grid, name=dose_key), columns=model.genes)
    if isinstance(genes, (int, np.integer)):
        if genes < 1:
            raise InputError(f"genes = {genes} needs to be at least 1 (or a list of names).")
        spread = (table.max() - table.min()).to_numpy()
        pick = np.argsort(-spread, kind="stable")[: int(genes)]
        return table.iloc[:, pick]
    return table[list(genes)]


def _dose_key(dose_keys: list[str], dose_key: str | None) -> str:
    """The dose to vary: the one named, or the model's only one."""
    if not dose_keys:
        raise InputError(f"the model has no dose; train it with {arg('dose')} (a continuous obs "
                         "column) to get a dose response.")
    if dose_key is None:
        if len(dose_keys) > 1:
            raise InputError(f"the model has several doses; choose one with {arg('dose_key')} "
                             f"({', '.join(dose_keys)}).")
        return dose_keys[0]
    if dose_key not in dose_keys:
        raise InputError(f"dose {dose_key!r} is not one the model was trained on; "
                         f"its doses are: {', '.join(dose_keys)}.")
    return dose_key
