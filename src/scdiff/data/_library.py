"""Library sizes (total counts per cell), recorded at training so generated cells can be
turned back into integer counts that count-based tools accept."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from scdiff._errors import InputError, arg

#: obs columns that hold a cell's total counts when the input is already normalised
TOTAL_COUNT_COLUMNS = ("n_counts", "total_counts", "nCount_RNA")
_N_QUANTILES = 101
#: The largest Poisson rate drawn (numpy's draws overflow near 9e18).
MAX_RATE = 1e15
#: The key of the quantiles of all training cells (the fallback for an unseen combination).
ALL_CELLS_KEY = "__all__"


def _group_keys(obs: pd.DataFrame, keys: Sequence[str]) -> np.ndarray:
    """Each row's combination of the ``keys`` columns as one string, ``"a | b"`` (vectorised:
    a million rows take a fraction of a second)."""
    cols = [obs[k].astype(str).to_numpy(dtype=object) for k in keys]
    out = cols[0]
    for col in cols[1:]:
        out = out + " | " + col
    return out


def fit_library_sizes(X, obs: pd.DataFrame, *, input_scale: str,
                      keys: Sequence[str]) -> dict[str, list[float]]:
    """Quantiles of the library size, overall and per combination of the categorical keys.

    From the counts themselves, or from an obs column of total counts (``n_counts``,
    ``total_counts``, ``nCount_RNA``) when the input is log-normalised. Empty when
    neither is available.
    """
    if input_scale == "table":  # a plain table has no library sizes
        return {}
    if input_scale == "counts":
        lib = np.asarray(X.sum(axis=1)).ravel() if sp.issparse(X) else np.asarray(X).sum(axis=1)
    else:
        col = next((c for c in TOTAL_COUNT_COLUMNS if c in obs.columns), None)
        if col is None:
            return {}
        lib = pd.to_numeric(obs[col], errors="coerce").to_numpy(dtype=np.float64)
        if not np.all(np.isfinite(lib)) or (lib <= 0).any():
            return {}
    qs = np.linspace(0, 1, _N_QUANTILES)
    out = {ALL_CELLS_KEY: np.quantile(lib, qs).round(3).tolist()}
    if keys:
        groups = _group_keys(obs, keys)
        for g in np.unique(groups):
            out[str(g)] = np.quantile(lib[groups == g], qs).round(3).tolist()
    return out


def draw_library_sizes(library: dict[str, list[float]], obs: pd.DataFrame, keys: Sequence[str],
                       rng: np.random.Generator) -> np.ndarray:
    """One library size per row of ``obs``, from its condition's training distribution
    (all training cells for a combination never seen)."""
    if not library:
        raise InputError(
            "counts were asked for, but the model was trained on log-normalised data without "
            "library sizes; train on raw counts (or with an obs column n_counts/total_counts), "
            f"or sample without {arg('counts', True)}."
        )
    groups = _group_keys(obs, keys) if keys else np.full(len(obs), ALL_CELLS_KEY)
    u = rng.random(len(obs))
    qs = np.linspace(0, 1, _N_QUANTILES)
    out = np.empty(len(obs))
    for g in np.unique(groups):
        mask = groups == g
        table = library.get(str(g), library[ALL_CELLS_KEY])
        out[mask] = np.interp(u[mask], qs, table)  # inverse-CDF draw
    return out


def counts_from_log(log_x, library_sizes: np.ndarray, rng: np.random.Generator,
                    target_sum: float = 1e4):
    """Poisson counts whose expected CP10k matches ``expm1(log_x)`` at the given library size.

    Rates are capped at :data:`MAX_RATE`, where Poisson draws overflow (only unguarded
    extrapolation, ``clip=False`` at a large guidance, gets near it). A CSR ``log_x``
    (sorted indices, no stored zeros) gives CSR counts, drawn in the same order as from
    the same matrix dense, so both give the same counts.
    """
    if not sp.issparse(log_x):  # the same draws on the non-zeros, in row-major order
        return counts_from_log(dense_to_csr(np.asarray(log_x)), library_sizes, rng,
                               target_sum).toarray()
    with np.errstate(over="ignore"):
        rate = np.expm1(log_x.data.astype(np.float64)) * (library_sizes[csr_rows(log_x.indptr)] / target_sum)
    out = sp.csr_matrix((rng.poisson(np.minimum(rate, MAX_RATE)).astype(np.float32),
                         log_x.indices.copy(), log_x.indptr.copy()), shape=log_x.shape)
    out.eliminate_zeros()
    return out


def csr_rows(indptr: np.ndarray) -> np.ndarray:
    """The row of each stored value of a CSR matrix with this ``indptr`` (rows from 0)."""
    return np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))


def dense_to_csr(x: np.ndarray) -> sp.csr_matrix:
    """``x`` as CSR (sorted indices, no stored zeros) in three passes over it: scipy's
    conversion of a dense array goes through COO and costs several times more."""
    mask = x != 0
    indptr = np.zeros(x.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.count_nonzero(mask, axis=1), out=indptr[1:])
    indices = np.nonzero(mask)[1].astype(np.int32)
    return sp.csr_matrix((x[mask], indices, indptr), shape=x.shape)


def round_below_one_read(log_x, library_sizes: np.ndarray, rng: np.random.Generator,
                         target_sum: float = 1e4, *, copy: bool = True, block_rows: int = 4096):
    """Values below one read at the cell's depth become 0 or one read, keeping the mean.

    Real log-normalised expression is 0 or at least ``log1p(target_sum / library_size)``
    (one read); nothing lies between. A generated value ``x`` in that gap becomes one
    read with probability ``x / one_read`` and 0 otherwise, so the expected value (and
    each gene's mean, which perturbation scores compare) is kept while the zeros become
    as frequent as real ones.

    ``log_x`` is a dense array or a CSR matrix. The uniforms are drawn ``block_rows``
    cells at a time, one per entry of the dense matrix in row-major order whether or
    not it is used (as scdiff 0.1 drew them, so its runs sample the same cells), so the
    result depends neither on ``block_rows`` nor on the format; the temporaries stay
    block-sized, and on CSR only the stored values are touched. ``copy=False`` rounds a
    float32 ``log_x`` in place (a CSR matrix then drops the values rounded to 0).

    Examples
    --------
    >>> x = np.full((1, 20000), 0.5, dtype=np.float32)   # a quarter of a read of 2.0
    >>> out = round_below_one_read(x, np.array([10000 / np.expm1(2.0)]), np.random.default_rng(0))
    >>> sorted(np.unique(out).round(3).tolist()), round(float(out.mean()), 1)
    ([0.0, 2.0], 0.5)
    """
    if block_rows < 1:
        raise InputError(f"block_rows = {block_rows} needs to be at least 1.")
    read = np.log1p(target_sum / np.asarray(library_sizes, dtype=np.float64)).astype(np.float32)
    if sp.issparse(log_x):
        out = log_x.copy() if copy else log_x
        out.data = np.asarray(out.data, dtype=np.float32)
        for start in range(0, out.shape[0], block_rows):
            stop = min(start + block_rows, out.shape[0])
            u = rng.random((stop - start, out.shape[1]), dtype=np.float32)
            a, b = out.indptr[start], out.indptr[stop]
            rows = csr_rows(out.indptr[start:stop + 1])
            _round_gap(out.data[a:b], read[start + rows], u[rows, out.indices[a:b]])
        out.eliminate_zeros()
        return out
    out = np.array(log_x, dtype=np.float32, copy=True) if copy else np.asarray(log_x, dtype=np.float32)
    for start in range(0, out.shape[0], block_rows):
        block = out[start:start + block_rows]
        one = np.broadcast_to(read[start:start + block_rows, None], block.shape)
        _round_gap(block, one, rng.random(block.shape, dtype=np.float32))
    return out


def _round_gap(vals: np.ndarray, one: np.ndarray, u: np.ndarray) -> None:
    """Each of ``vals`` in (0, ``one``) becomes ``one`` where ``u < vals / one``, else 0 (in place)."""
    gap = (vals > 0) & (vals < one)
    up = gap & (u < vals / one)
    vals[gap] = 0.0
    vals[up] = one[up]

