"""Data larger than memory: one ``.h5ad`` or many, read in row chunks.

Training from files opened with ``backed="r"`` never holds the expression whole: the
preprocessing is fitted in one pass over row chunks, and minibatches come from buffers of
a few randomly chosen contiguous row blocks (``BackedCells``), shuffled within each
buffer; the block order, across every file, is reshuffled every epoch, so a buffer mixes
cells of several files. Several files (one per donor or study) are read as one data set by
:class:`BackedFiles`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
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


@dataclass
class BackedFiles:
    """Several ``.h5ad`` files opened backed, read as one data set: their cells one after
    another (obs concatenated), their genes the same, their expression never loaded.

    Examples
    --------
    >>> files = read_backed(["donor1.h5ad", "donor2.h5ad"])  # doctest: +SKIP
    >>> files.n_obs, files.isbacked  # doctest: +SKIP
    (500000, True)
    """

    adatas: list[ad.AnnData]
    obs: pd.DataFrame
    var_names: pd.Index
    isbacked: bool = True

    @property
    def n_obs(self) -> int:
        return len(self.obs)

    @property
    def n_vars(self) -> int:
        return len(self.var_names)

    @property
    def obs_names(self) -> pd.Index:
        return self.obs.index


def read_backed(path: str | os.PathLike | Sequence[str | os.PathLike]) -> ad.AnnData | BackedFiles:
    """Open ``.h5ad`` files with ``backed="r"``: obs and var are read, the expression is not.

    One path gives a backed AnnData; several paths, or a folder (its ``*.h5ad`` files in
    name order), give :class:`BackedFiles`. The files must share their genes, in order;
    where cell names repeat across files (barcodes of different donors), each cell is
    named ``<name>-<file stem>``.

    Examples
    --------
    >>> adata = read_backed("data_examples/pbmc_train.h5ad")  # doctest: +SKIP
    >>> adata.isbacked  # doctest: +SKIP
    True
    """
    paths = _paths(path)
    adatas = [_open_backed(p) for p in paths]
    if len(adatas) == 1:
        return adatas[0]
    first = adatas[0]
    for p, a in zip(paths[1:], adatas[1:], strict=True):
        if not a.var_names.equals(first.var_names):
            raise InputError(f"{p} holds other genes than {paths[0]} (or in another order); give "
                             "files with the same var_names.")
    obs = pd.concat([a.obs for a in adatas])
    if not obs.index.is_unique:  # barcodes repeat across donors: name each cell by its file too
        stems = np.repeat([p.stem for p in paths], [a.n_obs for a in adatas]).astype(object)
        obs.index = pd.Index(obs.index.astype(str).to_numpy(dtype=object) + "-" + stems)
    from scdiff.data._io import check_anndata

    files = BackedFiles(adatas, obs, first.var_names)
    check_anndata(files, source=f"the {len(paths)} files")
    return files


def _paths(path) -> list[Path]:
    if isinstance(path, str | os.PathLike):
        path = Path(path)
        if path.is_dir():
            found = sorted(path.glob("*.h5ad"))
            if not found:
                raise InputError(f"{path} holds no .h5ad file; give files or a folder of them.")
            return found
        return [path]
    paths = [Path(p) for p in path]
    if not paths:
        raise InputError("no file given; give one .h5ad file or more.")
    return paths


def _open_backed(path: Path) -> ad.AnnData:
    from scdiff.data._io import check_anndata

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


@dataclass
class _Source:
    """One file's ``X`` (or layer): where it is, how it is stored."""

    path: Path
    n_obs: int
    sparse: bool
    indptr: np.ndarray | None


class RowReader:
    """Row ranges of backed files' ``X`` or a layer, as float32 arrays or CSR.

    Reads straight from the files, so a layer is not loaded whole either. Rows are
    numbered across the files, one after another.

    Examples
    --------
    >>> adata = ad.read_h5ad("data_examples/pbmc_train.h5ad", backed="r")  # doctest: +SKIP
    >>> RowReader(adata).rows(0, 100).shape  # doctest: +SKIP
    (100, 2000)
    """

    def __init__(self, adata: ad.AnnData | BackedFiles, layer: str | None = None) -> None:
        adatas = adata.adatas if isinstance(adata, BackedFiles) else [adata]
        if not all(a.isbacked for a in adatas):
            raise InputError("RowReader needs an AnnData opened with backed='r'.")
        self.key = "X" if layer is None else f"layers/{layer}"
        self.sources = [self._source(Path(a.filename), a.n_obs, layer) for a in adatas]
        self.offsets = np.cumsum([0] + [s.n_obs for s in self.sources])
        self.n_obs, self.n_vars = int(self.offsets[-1]), adata.n_vars
        self.var_names = pd.Index(adata.var_names.astype(str))
        self._fh: dict[int, h5py.File] = {}

    def _source(self, path: Path, n_obs: int, layer: str | None) -> _Source:
        with h5py.File(path, "r") as fh:
            if self.key not in fh:
                where = "X" if layer is None else f"layer {layer!r}"
                raise InputError(f"{path} holds no {where}; give {arg('layer')} a layer it has.")
            node = fh[self.key]
            kind = node.attrs.get("encoding-type", "array")
            if isinstance(node, h5py.Group) and kind != "csr_matrix":
                raise InputError(f"{path}: {self.key} is stored as {kind}; reading rows in "
                                 "chunks needs CSR or dense: write it again with X as CSR "
                                 "(adata.X = adata.X.tocsr()).")
            sparse = isinstance(node, h5py.Group)
            return _Source(path, n_obs, sparse, node["indptr"][:] if sparse else None)

    def _node(self, i: int):
        if i not in self._fh:  # opened lazily, so a reader can be handed to a thread
            self._fh[i] = h5py.File(self.sources[i].path, "r")
        return self._fh[i][self.key]

    def rows(self, start: int, stop: int):
        """Rows ``start:stop`` (CSR when stored sparse, else a dense float32 array)."""
        i = int(np.searchsorted(self.offsets, start, side="right")) - 1
        end = int(self.offsets[i + 1])
        if stop > end:  # across two files: each part from its own
            return stack_rows([self.rows(start, end), self.rows(end, stop)])
        source, node = self.sources[i], self._node(i)
        a, b = start - int(self.offsets[i]), stop - int(self.offsets[i])
        if not source.sparse:
            return np.asarray(node[a:b], dtype=np.float32)
        lo, hi = int(source.indptr[a]), int(source.indptr[b])
        data = np.asarray(node["data"][lo:hi], dtype=np.float32)
        return sp.csr_matrix((data, node["indices"][lo:hi], source.indptr[a : b + 1] - lo),
                             shape=(b - a, self.n_vars))

    def blocks(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """(starts, stops) of row blocks of at most ``size`` rows, none across two files."""
        per_file = [np.arange(lo, hi, size, dtype=np.int64)
                    for lo, hi in zip(self.offsets[:-1], self.offsets[1:], strict=True)]
        starts = np.concatenate(per_file)
        return starts, np.minimum(starts + size, np.repeat(self.offsets[1:], [len(b) for b in per_file]))

    def chunks(self, size: int = CHUNK_ROWS) -> Iterator:
        for start, stop in zip(*self.blocks(size), strict=True):
            yield self.rows(int(start), int(stop))

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_fh": {}}


def stack_rows(parts: list):
    """Row blocks one above the other: CSR if any is sparse (files may differ), else dense."""
    if any(sp.issparse(p) for p in parts):
        return sp.vstack([sp.csr_matrix(p) for p in parts], format="csr")
    return np.concatenate(parts)


def fit_backed(adata: ad.AnnData | BackedFiles, *, layer: str | None = None, n_genes: int = 2000,
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
        self.starts, self.stops = reader.blocks(block_rows)  # blocks never span two files
        self.blocks = np.arange(len(self.starts)) if blocks is None else np.asarray(blocks)
        self.device = device or torch.device("cpu")

    def _block_len(self, b: int) -> int:
        return int(self.stops[b] - self.starts[b])

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
        return type(self)(self.reader, self.pre, self.codes, self.doses, **args)

    def _standardise(self, X) -> np.ndarray:
        """Raw rows (every gene) -> the standardised modelled genes, as the fit did."""
        if self.pre.clip_negative:
            X = clip_values(X)
        if self.pre.input_scale == "counts":  # per cell, on all genes, as the fit did
            X = log_normalize(X)
        return self.pre.transform(X[:, self.reader.var_names.get_indexer(self.pre.genes)])

    def standardised_blocks(self) -> Iterator[np.ndarray]:
        """Every cell's standardised modelled genes, a row block at a time, in row order."""
        for b in self.blocks:
            yield self._standardise(self.reader.rows(int(self.starts[b]), int(self.stops[b])))

    def _read(self, blocks: np.ndarray) -> tuple[np.ndarray, object]:
        """(row numbers, raw rows of every gene) of ``blocks``."""
        starts = [int(self.starts[b]) for b in blocks]
        stops = [int(self.stops[b]) for b in blocks]
        rows = np.concatenate([np.arange(a, b) for a, b in zip(starts, stops, strict=True)])
        return rows, stack_rows([self.reader.rows(a, b) for a, b in zip(starts, stops, strict=True)])

    def _load(self, blocks: np.ndarray, perm_seed: int):
        """Rows of ``blocks``, standardised, shuffled, on the device, with their conditions."""
        rows, X = self._read(blocks)
        z = torch.from_numpy(self._standardise(X))
        perm = torch.randperm(len(rows), generator=torch.Generator().manual_seed(perm_seed))
        pin = self.device.type == "cuda"
        out = [z[perm], torch.from_numpy(self.codes[rows])[perm], torch.from_numpy(self.doses[rows])[perm]]
        return [t.pin_memory().to(self.device, non_blocking=True) if pin else t for t in out]

    def _slice(self, buffer, rows: slice) -> tuple:
        """One minibatch of a loaded buffer."""
        return tuple(t[rows] for t in buffer)

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
                    buffer = pending.result()
                    if k + 1 < len(todo):  # read the next buffer while this one trains
                        pending = pool.submit(self._load, todo[k + 1][0], todo[k + 1][2])
                    for i in range(first, count):
                        yield self._slice(buffer, slice(i * bs, (i + 1) * bs))
                    del buffer
                epoch += 1

