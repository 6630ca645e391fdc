"""The design of a perturbation experiment and per-condition mean expression."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from scdiff._errors import InputError


@dataclass(frozen=True)
class Design:
    """Which obs columns describe a perturbation experiment.

    Attributes
    ----------
    covariates
        Columns of the unperturbed context (cell type, cell line).
    perturbation
        Column of the perturbation (drug).
    dose
        Column of its dose.
    control
        The perturbation value of untreated cells.

    Examples
    --------
    >>> Design(covariates=("cell_line",), perturbation="drug", dose="dose", control="DMSO")
    Design(covariates=('cell_line',), perturbation='drug', dose='dose', control='DMSO')
    """

    covariates: tuple[str, ...] = ("cell_type",)
    perturbation: str = "drug"
    dose: str = "dose"
    control: str = "control"

    @property
    def columns(self) -> list[str]:
        return [*self.covariates, self.perturbation, self.dose]

    def check(self, adata: AnnData, what: str) -> None:
        missing = [c for c in self.columns if c not in adata.obs.columns]
        if missing:
            raise InputError(f"{what} lacks the obs column(s) {missing}; its columns are: "
                             f"{', '.join(map(str, adata.obs.columns))}.")


def design_frame(adata: AnnData, design: Design) -> pd.DataFrame:
    """The design columns of ``adata.obs`` as strings (dose as float)."""
    frame = pd.DataFrame({c: adata.obs[c].astype(str).to_numpy() for c in design.columns[:-1]})
    frame[design.dose] = pd.to_numeric(adata.obs[design.dose]).to_numpy(dtype=float)
    return frame


def group_means(adata: AnnData, design: Design) -> tuple[np.ndarray, list[tuple]]:
    """Mean of ``X`` per (covariates..., perturbation, dose) group, and the group keys."""
    means, _, _, keys = group_moments(adata, design)
    return means, keys


def group_moments(adata: AnnData, design: Design) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple]]:
    """Mean and variance of ``X`` and the cell count per group, and the group keys."""
    design.check(adata, "the data")
    frame = design_frame(adata, design)
    codes, uniques = pd.MultiIndex.from_frame(frame).factorize()
    onehot = sp.csr_matrix(
        (np.ones(len(codes)), (codes, np.arange(len(codes)))), shape=(len(uniques), len(codes))
    )
    sums = onehot @ adata.X
    sums = sums.toarray() if sp.issparse(sums) else np.asarray(sums)
    sq = onehot @ (adata.X.multiply(adata.X) if sp.issparse(adata.X) else np.asarray(adata.X) ** 2)
    sq = sq.toarray() if sp.issparse(sq) else np.asarray(sq)
    counts = np.asarray(onehot.sum(axis=1)).ravel()
    means = sums / counts[:, None]
    var = np.maximum(sq / counts[:, None] - means**2, 0.0) * (counts / np.maximum(counts - 1, 1))[:, None]
    return means, var, counts, [tuple(u) for u in uniques]
