"""The latent space's training cells: what its autoencoder reads (the standardised modelled
genes) and what it must give back (every gene's counts, with each cell's library size).

Counts come from the data itself when it holds counts; from log-normalised data with a
total-counts column (``n_counts``), as ``round(expm1(x) * n_counts / target_sum)``, which
inverts the normalisation. Minibatches carry the counts as coordinates of their non-zero
entries: the decoder's loss needs nothing else, and a batch of 30,000 genes stays small.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from scdiff._errors import InputError, arg
from scdiff._seeds import epoch_seed
from scdiff.data._backed import BackedCells, RowReader
from scdiff.data._library import TOTAL_COUNT_COLUMNS, csr_rows
from scdiff.data._preprocess import Preprocessor
from scdiff.data._validate import clip_negative as clip_values


def total_counts_column(obs: pd.DataFrame) -> np.ndarray | None:
    """Each cell's total counts from an obs column (:data:`TOTAL_COUNT_COLUMNS`), or None
    when there is none or it is not positive and finite everywhere."""
    col = next((c for c in TOTAL_COUNT_COLUMNS if c in obs.columns), None)
    if col is None:
        return None
    lib = pd.to_numeric(obs[col], errors="coerce").to_numpy(dtype=np.float64)
    return lib if np.all(np.isfinite(lib)) and (lib > 0).all() else None


def no_library_sizes() -> InputError:
    """The refusal of a count space for data whose library sizes are unknown."""
    return InputError(
        f"{arg('space', 'latent')} decodes counts and needs each cell's library size: train on "
        f"raw counts (or {arg('layer')} with them), or give log-normalised data an obs column "
        f"{' / '.join(TOTAL_COUNT_COLUMNS)}; or use {arg('space', 'pca')} or {arg('space', 'gene')}.")


def counts_of(X, obs: pd.DataFrame, input_scale: str, *, target_sum: float = 1e4
              ) -> tuple[sp.csr_matrix, np.ndarray]:
    """(counts of every gene as float32 CSR, library sizes) of cells given as ``X``.

    Counts are ``X`` itself for count data, each cell's library its total; log-normalised
    data are turned back into counts with their ``n_counts`` column (the library the
    normalisation divided by, which may cover more genes than ``X`` holds).
    """
    if input_scale == "counts":
        counts = sp.csr_matrix(X, dtype=np.float32)
        return counts, np.asarray(counts.sum(axis=1), dtype=np.float64).ravel()
    lib = total_counts_column(obs)
    if lib is None:
        raise no_library_sizes()
    counts = sp.csr_matrix(X, dtype=np.float32, copy=True)
    counts.data = np.round(np.expm1(counts.data.astype(np.float64))
                           * (lib[csr_rows(counts.indptr)] / target_sum)).astype(np.float32)
    counts.eliminate_zeros()
    return counts, lib


def coordinates(counts: sp.csr_matrix, device: torch.device) -> tuple[torch.Tensor, ...]:
    """(rows, cols, values) of a CSR block's stored entries, as tensors on ``device``."""
    rows = torch.from_numpy(csr_rows(counts.indptr).astype(np.int64))
    cols = torch.from_numpy(counts.indices.astype(np.int64))
    vals = torch.from_numpy(np.asarray(counts.data, dtype=np.float32))
    return tuple(t.to(device) for t in (rows, cols, vals))


@dataclass
class CountCells:
    """In-memory training cells of the autoencoder: ``x`` (float32, the standardised
    modelled genes), ``counts`` (CSR, every gene) and ``sizes`` (library sizes).

    The same interface as :class:`scdiff.train.CellTensors` (``len``, ``shard``, ``to``,
    ``batches``); each minibatch is ``(x, sizes, rows, cols, counts)``, the last three
    the coordinates of the batch's non-zero counts.

    Examples
    --------
    >>> cells = CountCells(np.zeros((10, 3), "float32"), sp.csr_matrix(np.eye(10, 5, dtype="float32")),
    ...                    np.full(10, 100.0))
    >>> [t.shape[0] for t in next(cells.batches(4, seed=0))][:2]
    [4, 4]
    """

    x: np.ndarray
    counts: sp.csr_matrix
    sizes: np.ndarray
    device: torch.device | None = None

    def __len__(self) -> int:
        return self.x.shape[0]

    def to(self, device: torch.device) -> CountCells:
        return CountCells(self.x, self.counts, self.sizes, device)

    def sample_counts(self, max_cells: int = 50_000) -> tuple[sp.csr_matrix, np.ndarray]:
        """(counts, sizes) of at most ``max_cells`` cells, evenly spaced."""
        rows = np.unique(np.linspace(0, len(self) - 1, min(max_cells, len(self))).astype(int))
        return self.counts[rows], np.asarray(self.sizes)[rows]

    def shard(self, rank: int, world_size: int) -> CountCells:
        if world_size == 1:
            return self
        rows = np.arange(rank, len(self), world_size)
        return CountCells(self.x[rows], self.counts[rows], self.sizes[rows], self.device)

    def batches(self, batch_size: int, seed: int, start_step: int = 0) -> Iterator[tuple[torch.Tensor, ...]]:
        """Endless shuffled minibatches from step ``start_step`` on (epochs drawn from
        (seed, epoch) as :meth:`CellTensors.batches` draws them)."""
        device = self.device or torch.device("cpu")
        n = len(self)
        bs = min(batch_size, n)
        per_epoch = n // bs
        epoch, offset = divmod(start_step, per_epoch)
        x = torch.from_numpy(np.ascontiguousarray(self.x, dtype=np.float32)).to(device)
        sizes = torch.from_numpy(np.asarray(self.sizes, dtype=np.float32)).to(device)
        while True:
            perm = torch.randperm(n, generator=torch.Generator().manual_seed(epoch_seed(seed, epoch)))
            for i in range(offset, per_epoch):
                idx = perm[i * bs : (i + 1) * bs]
                on = idx.to(device)
                yield (x[on], sizes[on], *coordinates(self.counts[idx.numpy()], device))
            epoch, offset = epoch + 1, 0


class BackedCountCells(BackedCells):
    """The autoencoder's training cells streamed from backed files: minibatches of
    ``(x, sizes, rows, cols, counts)`` as :class:`scdiff.data._counts.CountCells` gives
    them, read in shuffled buffers of row blocks as :class:`BackedCells` reads them.

    ``sizes`` holds each cell's library size; the counts of every gene come from the files'
    rows (count data) or from their log-normalised values and those sizes.
    """

    def __init__(self, reader: RowReader, preprocessor: Preprocessor, codes: np.ndarray,
                 doses: np.ndarray, *, sizes: np.ndarray, **kw) -> None:
        super().__init__(reader, preprocessor, codes, doses, **kw)
        self.sizes = np.asarray(sizes, dtype=np.float64).ravel()

    def _with(self, **kw) -> BackedCountCells:
        args = {"blocks": self.blocks, "block_rows": self.block_rows,
                "buffer_blocks": self.buffer_blocks, "device": self.device, "sizes": self.sizes, **kw}
        return BackedCountCells(self.reader, self.pre, self.codes, self.doses, **args)

    def _counts(self, X, sizes: np.ndarray):
        X = clip_values(X) if self.pre.clip_negative else X
        obs = pd.DataFrame({"n_counts": sizes})
        return counts_of(X, obs, self.pre.input_scale, target_sum=self.pre.target_sum)[0]

    def _load(self, blocks: np.ndarray, perm_seed: int):
        rows, X = self._read(blocks)
        z = torch.from_numpy(self._standardise(X))
        sizes = self.sizes[rows]
        perm = torch.randperm(len(rows), generator=torch.Generator().manual_seed(perm_seed))
        counts = self._counts(X, sizes)[perm.numpy()]
        sizes_t = torch.from_numpy(sizes.astype(np.float32))
        return [t.to(self.device) for t in (z[perm], sizes_t[perm])] + [counts]

    def _slice(self, buffer, rows: slice) -> tuple:
        z, sizes, counts = buffer
        return (z[rows], sizes[rows], *coordinates(counts[rows], self.device))

    def sample_counts(self, max_blocks: int = 8) -> tuple[sp.csr_matrix, np.ndarray]:
        """(counts, sizes) of a few row blocks spread over the data."""
        picks = self.blocks[np.unique(np.linspace(0, len(self.blocks) - 1, max_blocks).astype(int))]
        rows, X = self._read(picks)
        return self._counts(X, self.sizes[rows]), self.sizes[rows]
