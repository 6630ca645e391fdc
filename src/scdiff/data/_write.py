"""Writing an ``.h5ad`` chunk by chunk: generated cells never held together in memory."""

from __future__ import annotations

import os
from collections.abc import Iterable

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp

from scdiff._errors import InputError
from scdiff.data._library import dense_to_csr


class _CsrAppender:
    """A CSR matrix in an HDF5 group that grows by row blocks."""

    def __init__(self, group: h5py.Group, dtype: np.dtype) -> None:
        self.group, self.nnz, self.rows = group, 0, 0
        self.indptr = [np.zeros(1, dtype=np.int64)]
        kw = {"shape": (0,), "maxshape": (None,), "chunks": (1 << 18,)}
        self.data = group.create_dataset("data", dtype=dtype, **kw)
        self.indices = group.create_dataset("indices", dtype=np.int32, **kw)

    def append(self, m: sp.csr_matrix) -> None:
        m.sort_indices()
        end = self.nnz + m.nnz
        self.data.resize((end,))
        self.indices.resize((end,))
        self.data[self.nnz :] = m.data
        self.indices[self.nnz :] = m.indices
        self.indptr.append(m.indptr[1:].astype(np.int64) + self.nnz)
        self.nnz, self.rows = end, self.rows + m.shape[0]

    def close(self, n_vars: int) -> None:
        self.group.create_dataset("indptr", data=np.concatenate(self.indptr))
        self.group.attrs.update({"encoding-type": "csr_matrix", "encoding-version": "0.1.0",
                                 "shape": np.array([self.rows, n_vars])})


def write_h5ad_chunks(path: str | os.PathLike, chunks: Iterable[ad.AnnData]) -> int:
    """Write AnnData chunks (same ``var``) into one ``.h5ad`` without holding them together.

    ``X`` and each layer are written as growing CSR matrices (generated cells are mostly
    exact zeros), ``obs`` of all chunks at the end (small), ``var`` and ``uns`` from the
    first chunk. The file reads back with :func:`anndata.read_h5ad`. Returns the number
    of cells.

    Examples
    --------
    >>> parts = (ad.AnnData(np.eye(3, dtype=np.float32)) for _ in range(2))
    >>> write_h5ad_chunks("/tmp/two.h5ad", parts)  # doctest: +SKIP
    6
    """
    from anndata.io import write_elem

    obs_parts: list[pd.DataFrame] = []
    first: ad.AnnData | None = None
    mats: dict[str, _CsrAppender] = {}
    with h5py.File(path, "w") as fh:
        fh.attrs.update({"encoding-type": "anndata", "encoding-version": "0.1.0"})
        for part in chunks:
            if first is None:
                first, mats = part, _matrices(fh, part)
            if list(part.var_names) != list(first.var_names) or set(part.layers) != set(mats) - {"X"}:
                raise InputError("chunks to write hold different genes or layers; "
                                 "give chunks of one model.")
            for key, mat in mats.items():
                m = part.X if key == "X" else part.layers[key]
                mat.append(sp.csr_matrix(m) if sp.issparse(m) else dense_to_csr(np.asarray(m)))
            obs_parts.append(part.obs)
        if first is None:
            raise InputError("there are no cells to write.")
        for mat in mats.values():
            mat.close(first.n_vars)
        fh["layers"].attrs.update({"encoding-type": "dict", "encoding-version": "0.1.0"})
        write_elem(fh, "obs", _concat_obs(obs_parts))
        write_elem(fh, "var", first.var)
        write_elem(fh, "uns", dict(first.uns))
        for key in ("obsm", "varm", "obsp", "varp"):
            write_elem(fh, key, {})
    return mats["X"].rows


def _matrices(fh: h5py.File, first: ad.AnnData) -> dict[str, _CsrAppender]:
    """A growing CSR matrix for ``X`` and one for each layer of the first chunk."""
    layers = fh.create_group("layers")
    mats = {"X": _CsrAppender(fh.create_group("X"), first.X.dtype)}
    for key in first.layers:
        mats[key] = _CsrAppender(layers.create_group(key), first.layers[key].dtype)
    return mats


def _concat_obs(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """The chunks' obs as one, categoricals with the first chunk's categories (a chunk may
    have met only some of them)."""
    obs = pd.concat(parts)
    for col in obs.columns:
        if isinstance(parts[0][col].dtype, pd.CategoricalDtype):
            obs[col] = pd.Categorical(obs[col], categories=parts[0][col].cat.categories)
    return obs
