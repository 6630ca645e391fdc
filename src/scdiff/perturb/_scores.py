"""The scores of one predicted condition: agreement of means, of changes, of DE genes, and
the energy distance of cells (see :mod:`scdiff.perturb._metrics` for what each means)."""

from __future__ import annotations

import zlib

import numpy as np
from anndata import AnnData

from scdiff.data import select_rows, subsample
from scdiff.metrics import correlation, energy_distance, fit_pca, welch_t

#: Cells per side of an energy distance, and the PCs it is measured on.
ENERGY_CELLS, ENERGY_PCS = 500, 50
#: Training cells the energy's PCA is fitted on, at most (a seeded subsample).
PCA_CELLS = 20_000


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


def de_overlap(real_top: np.ndarray, change: np.ndarray) -> float:
    """Share of the real top DE genes among the prediction's as many largest ``|change|``.

    A gene the prediction leaves unchanged is never one of its DE genes, so predicting no
    change scores 0 however the ties would fall.

    Examples
    --------
    >>> de_overlap(np.array([0, 1]), np.array([0.0, 2.0, 1.0]))
    0.5
    """
    n = len(real_top)
    pred_top = np.argsort(-np.abs(change), kind="stable")[:n]
    pred_top = pred_top[np.abs(change[pred_top]) > 0]
    return len(np.intersect1d(real_top, pred_top)) / n


def de_direction(real_top: np.ndarray, delta: np.ndarray, change: np.ndarray) -> float:
    """Share of the real top DE genes whose predicted change has the real change's sign.

    Examples
    --------
    >>> de_direction(np.array([0, 1]), np.array([1.0, -1.0]), np.array([0.5, 0.5]))
    0.5
    """
    return float(np.mean(np.sign(change[real_top]) == np.sign(delta[real_top])))


def prediction_scores(mu: np.ndarray, hat: np.ndarray, base: np.ndarray, ref: np.ndarray,
                      top: np.ndarray, top_de: np.ndarray) -> dict[str, float]:
    """The mean-based scores of one condition: real mean ``mu``, predicted ``hat``, the
    control ``base``, the mean perturbed state ``ref``; ``top``/``top_de`` the real DE genes."""
    delta, change = mu - base, hat - base
    return {
        "r2_all": r2_score(mu, hat), "r2_top": r2_score(mu[top], hat[top]),
        "r2_delta_top": r2_score(delta[top], change[top]),
        "pearson_delta_top": correlation(delta[top], change[top]),
        "r2_delta_systema": r2_score(mu[top] - ref[top], hat[top] - ref[top]),
        "pearson_delta_systema": correlation(mu[top] - ref[top], hat[top] - ref[top]),
        "de_overlap": de_overlap(top_de, change), "de_direction": de_direction(top_de, delta, change),
    }


class EnergyScorer:
    """Energy distances on the top PCs of a PCA fitted on training cells.

    Each cloud is at most ``ENERGY_CELLS`` cells, drawn with its own generator seeded by
    ``seed`` and what the cloud is (``("real", i)``: condition ``i``'s real cells), so a
    method's score does not depend on which other methods are scored. A baseline's cells
    are its covariates' training controls shifted by its predicted change (the shift is
    linear, so it moves the control cloud's PCs).
    """

    def __init__(self, train: AnnData, control_cells: dict[tuple, np.ndarray], *, seed: int):
        self.seed, self.train, self.control_cells = seed, train, control_cells
        fit = subsample(np.arange(train.n_obs), PCA_CELLS, self._rng("pca"))
        self.pca = fit_pca(select_rows(train.X, fit), n_pcs=ENERGY_PCS, seed=seed)
        self._controls: dict[tuple, np.ndarray] = {}

    def _rng(self, *what: object) -> np.random.Generator:
        return np.random.default_rng([self.seed, *(zlib.crc32(repr(w).encode()) for w in what)])

    def cloud(self, adata: AnnData, idx: np.ndarray, *what: object) -> np.ndarray:
        """PCs of at most ``ENERGY_CELLS`` of the cells ``idx`` of ``adata``, drawn for ``what``."""
        return self.pca.transform(select_rows(adata.X, subsample(idx, ENERGY_CELLS, self._rng(*what))))

    def shifted(self, cov: tuple, change: np.ndarray) -> np.ndarray:
        """PCs of the covariates' training controls moved by ``change`` (genes)."""
        if cov not in self._controls:
            self._controls[cov] = self.cloud(self.train, self.control_cells[cov], "control", cov)
        return self._controls[cov] + change @ self.pca.components.T

    def energy(self, real: np.ndarray, other: np.ndarray) -> float:
        """The energy distance of two clouds of PCs."""
        return float(energy_distance(real, other))
