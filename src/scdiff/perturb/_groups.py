"""The design of a perturbation experiment and per-condition mean expression.

A condition is (covariates..., perturbation, dose). The perturbation may be a set
(``"drugA+drugB"``) with one dose per member (a string dose column, ``"10+100"``) or one
dose for all (a numeric column); :mod:`scdiff.data._sets` is the one reading of that
spelling. Group keys spell a set in one order: members sorted, doses following them, so
``"b+a"`` at ``"1+2"`` and ``"a+b"`` at ``"2+1"`` are the same group.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from scdiff._errors import InputError
from scdiff.data._sets import canonical, is_set_column, member_doses, members_or_name

#: One condition's perturbations with their doses, sorted by name; ``()`` for the control.
Parts = tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class Design:
    """Which obs columns describe a perturbation experiment.

    Attributes
    ----------
    covariates
        Columns of the unperturbed context (cell type, cell line).
    perturbation
        Column of the perturbation (drug); a set joins its members by ``+``.
    dose
        Column of its dose: numeric, or strings with one dose per member (``"10+100"``).
    control
        The perturbation value of untreated cells.

    Examples
    --------
    >>> Design(covariates=("cell_line",), perturbation="drug", dose="dose", control="DMSO")
    Design(covariates=('cell_line',), perturbation='drug', dose='dose', control='DMSO')
    >>> Design().parts("drugB+drugA", "100+10")
    (('drugA', 10.0), ('drugB', 100.0))
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

    def parts(self, perturbation: object, dose: object) -> Parts:
        """The members of a condition with their doses, sorted by member (``()``: control)."""
        if str(perturbation) == self.control:
            return ()
        names = members_or_name(perturbation)
        doses = member_doses(dose, len(names), key=self.dose)
        return tuple(sorted((n, d) for n, d in zip(names, doses, strict=True) if n != self.control))

    def key_parts(self, key: tuple) -> Parts:
        """:meth:`parts` of a group key ``(covariates..., perturbation, dose)``."""
        return self.parts(key[-2], key[-1])


def _canonical(value: str, dose: str, design: Design, as_text: bool) -> tuple[str, float | str]:
    """A (perturbation, dose) pair spelled in its one order: members sorted, doses after them."""
    names = members_or_name(value)
    doses = member_doses(dose, len(names), key=design.dose)
    if not as_text:
        return canonical(names)[0], float(doses[0])  # a single number, every member's
    return canonical(names, doses)


def design_frame(adata: AnnData, design: Design) -> pd.DataFrame:
    """The design columns of ``adata.obs`` as strings; the dose as float, or as canonical
    strings (``"10+100"``) where a string dose column gives a set its members' doses."""
    frame = pd.DataFrame({c: adata.obs[c].astype(str).to_numpy() for c in design.covariates})
    pert = adata.obs[design.perturbation].astype(str).to_numpy()
    raw = adata.obs[design.dose]
    if pd.api.types.is_numeric_dtype(raw):
        values, codes = np.unique(pert, return_inverse=True)
        sets = np.array([canonical(members_or_name(v))[0] for v in values], dtype=object)
        frame[design.perturbation] = sets[codes.ravel()]
        frame[design.dose] = pd.to_numeric(raw).to_numpy(dtype=float)
        return frame
    text = raw.astype(str).to_numpy()
    codes, uniques = pd.MultiIndex.from_arrays([pert, text]).factorize()
    as_text = is_set_column(d for _, d in uniques)
    canon = [_canonical(p, d, design, as_text) for p, d in uniques]
    frame[design.perturbation] = np.array([c[0] for c in canon], dtype=object)[codes]
    frame[design.dose] = np.array([c[1] for c in canon], dtype=object if as_text else float)[codes]
    return frame


def group_codes(adata: AnnData, design: Design) -> tuple[np.ndarray, list[tuple]]:
    """Each cell's group (an index into the keys), and the group keys in order of appearance."""
    design.check(adata, "the data")
    codes, uniques = pd.MultiIndex.from_frame(design_frame(adata, design)).factorize()
    return np.asarray(codes), [tuple(u) for u in uniques]


def group_moments(adata: AnnData, design: Design) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple]]:
    """Mean and variance of ``X`` and the cell count per group, and the group keys."""
    codes, keys = group_codes(adata, design)
    return (*moments(adata.X, codes, len(keys)), keys)


def moments(X, codes: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and variance (n - 1 denominator) of the rows of ``X`` per code, and the counts."""
    onehot = sp.csr_matrix(
        (np.ones(len(codes)), (codes, np.arange(len(codes)))), shape=(n_groups, len(codes))
    )
    sums = onehot @ X
    sums = sums.toarray() if sp.issparse(sums) else np.asarray(sums)
    sq = onehot @ (X.multiply(X) if sp.issparse(X) else np.asarray(X) ** 2)
    sq = sq.toarray() if sp.issparse(sq) else np.asarray(sq)
    counts = np.asarray(onehot.sum(axis=1)).ravel()
    means = sums / counts[:, None]
    var = np.maximum(sq / counts[:, None] - means**2, 0.0) * (counts / np.maximum(counts - 1, 1))[:, None]
    return means, var, counts


def cells_by_group(codes: np.ndarray, n_groups: int) -> list[np.ndarray]:
    """The cell indices of each group, ascending."""
    order = np.argsort(codes, kind="stable")
    return np.split(order, np.cumsum(np.bincount(codes, minlength=n_groups))[:-1])


@dataclass
class Measured:
    """The training groups: each cell's group, the groups' means, variances, counts and
    keys, each key's :meth:`Design.parts`, and the control mean per covariate combination
    (what every baseline starts from)."""

    design: Design
    codes: np.ndarray
    keys: list[tuple]
    means: np.ndarray
    var: np.ndarray
    counts: np.ndarray
    parts: list[Parts] = field(init=False)
    control: dict[tuple, np.ndarray] = field(init=False)

    def __post_init__(self) -> None:
        self.parts = [self.design.key_parts(k) for k in self.keys]
        self.control = {k[:-2]: self.means[j] for j, k in enumerate(self.keys)
                        if k[-2] == self.design.control}

    @classmethod
    def of(cls, adata: AnnData, design: Design) -> Measured:
        codes, keys = group_codes(adata, design)
        return cls(design, codes, keys, *moments(adata.X, codes, len(keys)))

    def treated(self, *, with_control: bool = True) -> list[int]:
        """Indices of the treated groups (whose covariates have controls, by default)."""
        return [j for j, k in enumerate(self.keys) if k[-2] != self.design.control
                and (not with_control or k[:-2] in self.control)]

    def control_moments(self) -> dict[tuple, tuple[np.ndarray, np.ndarray, float]]:
        """(mean, variance, count) of the control group per covariate combination."""
        return {k[:-2]: (self.means[j], self.var[j], float(self.counts[j]))
                for j, k in enumerate(self.keys) if k[-2] == self.design.control}

    def change(self, j: int) -> np.ndarray:
        """Group ``j``'s mean minus its covariates' control mean."""
        return self.means[j] - self.control[self.keys[j][:-2]]


def measured(train: AnnData | Measured, design: Design) -> Measured:
    """The training groups of ``train``, read from its cells unless they already are."""
    return train if isinstance(train, Measured) else Measured.of(train, design)


def requests(groups: pd.DataFrame, design: Design) -> list[tuple[tuple[str, ...], Parts]]:
    """(covariates, parts) of each asked group, as the group keys spell them."""
    missing = [c for c in design.columns if c not in groups.columns]
    if missing:
        raise InputError(f"groups lacks the column(s) {missing}; give one row per condition with "
                         f"the columns {design.columns}.")
    covs = groups[list(design.covariates)].astype(str).itertuples(index=False, name=None)
    return [(cov, design.parts(p, d))
            for cov, p, d in zip(covs, groups[design.perturbation], groups[design.dose], strict=True)]
