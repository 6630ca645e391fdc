"""Data larger than memory: ``.h5ad`` read in row chunks, and ``.h5ad`` written in chunks.

Training from an AnnData opened with ``backed="r"`` never holds the expression whole:
the preprocessing is fitted in one pass over row chunks, and minibatches come from
buffers of a few randomly chosen contiguous row blocks (``BackedCells``), shuffled
within each buffer; the block order is reshuffled every epoch. Generated cells are
written to ``.h5ad`` chunk by chunk (:func:`write_h5ad_chunks`) as a CSR matrix.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from scdiff._errors import InputError, arg
from scdiff._seeds import buffer_seed, epoch_seed
from scdiff.data._preprocess import Preprocessor, gene_max, log_normalize, min_positive
from scdiff.data._validate import clip_negative as clip_values
from scdiff.data._validate import detect_scale

#: Rows read at a time when fitting, and rows per shuffled training block.
CHUNK_ROWS = 32768
BLOCK_ROWS = 2048
#: Blocks per training buffer: 16 x 2048 rows x 2000 genes x 4 B = 256 MiB dense.
BUFFER_BLOCKS = 16


def read_backed(path: str | os.PathLike) -> ad.AnnData:
    """Open an ``.h5ad`` with ``backed="r"``: obs and var are read, the expression is not.

    Examples
    --------
    >>> adata = read_backed("data_examples/pbmc_train.h5ad")  # doctest: +SKIP
    >>> adata.isbacked  # doctest: +SKIP
    True
    """
    from scdiff.data._io import check_anndata

    path = Path(path)
    if path.suffix.lower() != ".h5ad":
        raise InputError(f"backed reading needs an .h5ad file; {path.name} is not one: read it "
                         f"whole (without {arg('backed', True)}).")
    if not path.is_file():
        raise InputError(f"{path} does not exist or is not a file; check the path.")
    try:
        adata = ad.read_h5ad(path, backed="r")
    except Exception as err:  # h5py/anndata raise many types for a damaged file
        raise InputError(f"{path} could not be opened as .h5ad ({type(err).__name__}); the file "
                         "may be truncated or not an AnnData file.") from err
    check_anndata(adata, source=str(path))
    return adata


class RowReader:
    """Row ranges of a backed AnnData's ``X`` or a layer, as float32 arrays or CSR.

    Reads straight from the file, so a layer is not loaded whole either.

    Examples
    --------
    >>> adata = ad.read_h5ad("data_examples/pbmc_train.h5ad", backed="r")  # doctest: +SKIP
    >>> RowReader(adata).rows(0, 100).shape  # doctest: +SKIP
    (100, 2000)
    """

    def __init__(self, adata: ad.AnnData, layer: str | None = None) -> None:
        if not adata.isbacked:
            raise InputError("RowReader needs an AnnData opened with backed='r'.")
        self.path = Path(adata.filename)
        self.key = "X" if layer is None else f"layers/{layer}"
        self.n_obs, self.n_vars = adata.n_obs, adata.n_vars
        self.var_names = pd.Index(adata.var_names.astype(str))
        with h5py.File(self.path, "r") as fh:
            if self.key not in fh:
                where = "X" if layer is None else f"layer {layer!r}"
                raise InputError(f"{self.path} holds no {where}; give {arg('layer')} a layer it has.")
            node = fh[self.key]
            kind = node.attrs.get("encoding-type", "array")
            if isinstance(node, h5py.Group) and kind != "csr_matrix":
                raise InputError(f"{self.path}: {self.key} is stored as {kind}; reading rows in "
                                 "chunks needs CSR or dense: write it again with X as CSR "
                                 "(adata.X = adata.X.tocsr()).")
            self.sparse = isinstance(node, h5py.Group)
            self.indptr = node["indptr"][:] if self.sparse else None
        self._fh: h5py.File | None = None

    def _node(self):
        if self._fh is None:  # opened lazily, so a reader can be handed to a thread
            self._fh = h5py.File(self.path, "r")
        return self._fh[self.key]

    def rows(self, start: int, stop: int):
        """Rows ``start:stop`` (CSR when stored sparse, else a dense float32 array)."""
        node = self._node()
        if not self.sparse:
            return np.asarray(node[start:stop], dtype=np.float32)
        a, b = int(self.indptr[start]), int(self.indptr[stop])
        data = np.asarray(node["data"][a:b], dtype=np.float32)
        indices = node["indices"][a:b]
        return sp.csr_matrix((data, indices, self.indptr[start : stop + 1] - a),
                             shape=(stop - start, self.n_vars))

    def chunks(self, size: int = CHUNK_ROWS) -> Iterator:
        for start in range(0, self.n_obs, size):
            yield self.rows(start, min(start + size, self.n_obs))

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_fh": None}


def fit_backed(adata: ad.AnnData, *, layer: str | None = None, n_genes: int = 2000,
               chunk_rows: int = CHUNK_ROWS, clip_negative: bool = False
               ) -> tuple[Preprocessor, np.ndarray]:
    """:meth:`Preprocessor.fit` in one pass over row chunks of a backed AnnData.

    Gene moments and smallest non-zero values are accumulated over chunks; counts are
    normalised per cell, which needs only the cell's own row. Same result as the
    in-memory fit, up to float rounding. Also returns each cell's total (its library
    size when the input is counts) as an ``[n, 1]`` array.
    """
    reader = RowReader(adata, layer)
    source = f"layer {layer!r}" if layer else "X"
    scale = None
    total = np.zeros(reader.n_vars)
    total_sq = np.zeros(reader.n_vars)
    min_pos = np.full(reader.n_vars, np.inf)
    top = np.zeros(reader.n_vars)
    row_sums = []
    for chunk in reader.chunks(chunk_rows):
        if clip_negative:
            chunk = clip_values(chunk)
        row_sums.append(np.asarray(chunk.sum(axis=1), dtype=np.float64).reshape(-1, 1))
        s = detect_scale(chunk, source=source)
        if scale is not None and s != scale:
            raise InputError(f"{source} holds counts in some rows and non-integer values in "
                             "others; give all cells on one scale.")
        scale = s
        logx = log_normalize(chunk) if scale == "counts" else chunk
        if sp.issparse(logx):
            total += np.asarray(logx.sum(axis=0), dtype=np.float64).ravel()
            total_sq += np.asarray(logx.multiply(logx).sum(axis=0), dtype=np.float64).ravel()
        else:
            x64 = np.asarray(logx, dtype=np.float64)
            total += x64.sum(axis=0)
            total_sq += (x64**2).sum(axis=0)
        min_pos = np.minimum(min_pos, min_positive(logx))
        top = np.maximum(top, gene_max(logx))
    n = reader.n_obs
    mean = total / n
    std = np.sqrt(np.maximum(total_sq / n - mean**2, 0.0))
    pre = Preprocessor.from_moments(input_scale=scale or "log", layer=layer, var_names=adata.var_names,
                                    mean=mean, std=std, min_positive=min_pos, maximum=top,
                                    n_genes=n_genes, clip_negative=clip_negative)
    return pre, np.concatenate(row_sums)


class BackedCells:
    """Training minibatches streamed from a backed AnnData with bounded memory.

    The same interface as :class:`scdiff.train.CellTensors` (``len``, ``shard``, ``to``,
    ``batches``): the trainer cannot tell them apart. Each epoch visits the row blocks in
    an order drawn from (seed, epoch); ``BUFFER_BLOCKS`` blocks at a time are read,
    preprocessed and shuffled together, and the next buffer is read by a background
    thread meanwhile. Batches never straddle buffers (a trailing partial one is skipped).
    """

    def __init__(self, reader: RowReader, preprocessor: Preprocessor, codes: np.ndarray,
                 doses: np.ndarray, *, blocks: np.ndarray | None = None,
                 block_rows: int = BLOCK_ROWS, buffer_blocks: int = BUFFER_BLOCKS,
                 device: torch.device | None = None) -> None:
        self.reader, self.pre = reader, preprocessor
        self.codes, self.doses = codes, doses
        self.block_rows, self.buffer_blocks = block_rows, buffer_blocks
        n_blocks = -(-reader.n_obs // block_rows)
        self.blocks = np.arange(n_blocks) if blocks is None else np.asarray(blocks)
        self.device = device or torch.device("cpu")

    def _block_len(self, b: int) -> int:
        return min(self.block_rows, self.reader.n_obs - b * self.block_rows)

    def __len__(self) -> int:
        return int(sum(self._block_len(int(b)) for b in self.blocks))

    def shard(self, rank: int, world_size: int) -> BackedCells:
        """Every ``world_size``-th block from ``rank``: each process reads its own rows."""
        return self._with(blocks=self.blocks[rank::world_size])

    def to(self, device: torch.device) -> BackedCells:
        return self._with(device=device)

    def _with(self, **kw) -> BackedCells:
        args = {"blocks": self.blocks, "block_rows": self.block_rows,
                "buffer_blocks": self.buffer_blocks, "device": self.device, **kw}
        return BackedCells(self.reader, self.pre, self.codes, self.doses, **args)

    def _load(self, blocks: np.ndarray, perm_seed: int):
        """Rows of ``blocks``, standardised, shuffled, on the device, with their conditions."""
        starts = [int(b) * self.block_rows for b in blocks]
        stops = [a + self._block_len(int(b)) for a, b in zip(starts, blocks, strict=True)]
        rows = np.concatenate([np.arange(a, b) for a, b in zip(starts, stops, strict=True)])
        parts = [self.reader.rows(a, b) for a, b in zip(starts, stops, strict=True)]
        X = sp.vstack(parts, format="csr") if sp.issparse(parts[0]) else np.concatenate(parts)
        if self.pre.clip_negative:
            X = clip_values(X)
        if self.pre.input_scale == "counts":  # per cell, on all genes, as the fit did
            X = log_normalize(X)
        genes = self.reader.var_names.get_indexer(self.pre.genes)
        z = torch.from_numpy(self.pre.transform(X[:, genes]))
        perm = torch.randperm(len(rows), generator=torch.Generator().manual_seed(perm_seed))
        pin = self.device.type == "cuda"
        out = [z[perm], torch.from_numpy(self.codes[rows])[perm], torch.from_numpy(self.doses[rows])[perm]]
        return [t.pin_memory().to(self.device, non_blocking=True) if pin else t for t in out]

    def _plan(self, seed: int, epoch: int) -> list[tuple[np.ndarray, int]]:
        """This epoch's buffers: (blocks, batches it yields), from (seed, epoch) alone."""
        gen = torch.Generator().manual_seed(epoch_seed(seed, epoch))
        order = self.blocks[torch.randperm(len(self.blocks), generator=gen).numpy()]
        groups = [order[i : i + self.buffer_blocks] for i in range(0, len(order), self.buffer_blocks)]
        return [(g, sum(self._block_len(int(b)) for b in g)) for g in groups]

    def batches(self, batch_size: int, seed: int, start_step: int = 0
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Endless minibatches from step ``start_step`` on, reproducible from ``seed``."""
        smallest = min(n for _, n in self._plan(seed, 0))
        bs = min(batch_size, smallest)
        per_epoch = sum(n // bs for _, n in self._plan(seed, 0))
        epoch, skip = divmod(start_step, per_epoch)
        with ThreadPoolExecutor(1) as pool:
            while True:
                plan = [(g, n // bs, buffer_seed(seed, epoch, k))
                        for k, (g, n) in enumerate(self._plan(seed, epoch))]
                todo = []
                for blocks, count, perm_seed in plan:  # whole buffers already done are not read
                    if skip >= count:
                        skip -= count
                        continue
                    todo.append((blocks, count, perm_seed, skip))
                    skip = 0
                pending = pool.submit(self._load, todo[0][0], todo[0][2]) if todo else None
                for k, (_, count, _, first) in enumerate(todo):
                    x, cats, doses = pending.result()
                    if k + 1 < len(todo):  # read the next buffer while this one trains
                        pending = pool.submit(self._load, todo[k + 1][0], todo[k + 1][2])
                    for i in range(first, count):
                        rows = slice(i * bs, (i + 1) * bs)
                        yield x[rows], cats[rows], doses[rows]
                    del x, cats, doses
                epoch += 1


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
                mat.append(sp.csr_matrix(part.X if key == "X" else part.layers[key]))
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
