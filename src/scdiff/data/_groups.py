"""Grouping cells by their condition columns, aligning gene sets, and slicing rows.

Everything here works on row indices, so a large sparse matrix is only ever
sliced to the cells a metric uses, never densified whole.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from scdiff._errors import InputError

#: Separator between the values of several condition columns in a group name.
GROUP_SEP = " | "
#: Group name used when no condition is given.
ALL_CELLS = "all"


def condition_keys(condition: str | Sequence[str] | None) -> list[str]:
    """Normalise ``condition`` to a list of obs column names (empty for None)."""
    if condition is None:
        return []
    if isinstance(condition, str):
        return [condition]
    keys = list(condition)
    if not all(isinstance(k, str) for k in keys):
        raise InputError(
            f"condition must be an obs column name or a list of names, got {condition!r}"
        )
    return keys


def group_labels(adata: AnnData, keys: list[str], what: str) -> np.ndarray:
    """The group of each cell: the condition columns' values joined with ``GROUP_SEP``.

    Parameters
    ----------
    adata
        Cells whose ``.obs`` holds the condition columns.
    keys
        Condition column names; empty means one group, ``"all"``.
    what
        How the error message names ``adata`` ("real", "generated", ...).
    """
    if not keys:
        return np.full(adata.n_obs, ALL_CELLS, dtype=object)
    missing = [k for k in keys if k not in adata.obs.columns]
    if missing:
        raise InputError(
            f"condition column {missing[0]!r} not found in {what}.obs; "
            f"available columns: {', '.join(map(str, adata.obs.columns)) or 'none'}"
        )
    cols = [adata.obs[k].astype(str).to_numpy() for k in keys]
    out = cols[0].astype(object)
    for col in cols[1:]:
        out = out + GROUP_SEP + col
    return out


def group_order(adata: AnnData, keys: list[str], labels: np.ndarray) -> list[str]:
    """Groups in a stable order: the category order of a single categorical key, else sorted."""
    present = set(labels.tolist())
    if len(keys) == 1 and isinstance(adata.obs[keys[0]].dtype, pd.CategoricalDtype):
        ordered = [str(c) for c in adata.obs[keys[0]].cat.categories]
        return [g for g in ordered if g in present] + sorted(present - set(ordered))
    return sorted(present)


def align_genes(real: AnnData, other: AnnData, what: str) -> AnnData:
    """Return ``other`` with its genes in ``real``'s order, or raise if the gene sets differ."""
    for name, ad in (("real", real), (what, other)):
        if not isinstance(ad, AnnData):
            raise InputError(f"{name} must be an AnnData object, got {type(ad).__name__}")
        if ad.X is None:
            raise InputError(f"{name}.X is empty; evaluate needs log-normalized expression in .X")
        if not ad.var_names.is_unique:
            raise InputError(f"{name}.var_names has duplicates; run {name}.var_names_make_unique()")
    if real.var_names.equals(other.var_names):
        return other
    extra = other.var_names.difference(real.var_names)
    lacking = real.var_names.difference(other.var_names)
    if len(extra) or len(lacking):
        raise InputError(
            f"{what} data has {len(extra)} genes not in the real data and lacks {len(lacking)} "
            f"of its genes; evaluate needs the same var_names: sample from a run trained on "
            f"this gene space"
        )
    return other[:, real.var_names]


def select_rows(X, idx: np.ndarray):
    """Rows ``idx`` of a dense or sparse matrix: sparse as float64 CSR, dense float32 kept.

    Dense float32 is not doubled in memory; scipy sums sparse float32 in float32,
    so sparse rows (whose size is their non-zeros) are converted.
    """
    if sp.issparse(X):
        return sp.csr_matrix(X[idx], dtype=np.float64)
    return np.asarray(X[idx], dtype=np.float32 if X.dtype == np.float32 else np.float64)


def to_dense(X) -> np.ndarray:
    """A dense float64 copy of an already small matrix."""
    return X.toarray() if sp.issparse(X) else np.asarray(X, dtype=np.float64)


def subsample(idx: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """At most ``n`` of ``idx`` drawn without replacement, kept in ascending order."""
    if len(idx) <= n:
        return np.asarray(idx)
    return np.sort(rng.choice(idx, size=n, replace=False))
