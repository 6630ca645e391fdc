"""Recognising cells: a small sketch of the training cells, kept with a run and its samples,
tells later whether a set of "real" cells are the ones it trained on.

A cell is its name together with how many of the modelled genes it expresses: names alone
collide between data sets (AnnData built from arrays names cells "0", "1", ...), and the
count of expressed genes is the same whether the cell is seen as counts or log1p."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np
import scipy.sparse as sp

#: Names kept in a sketch: the k smallest name hashes (a bottom-k sketch).
SKETCH_SIZE = 1000


def expressed_genes(X) -> np.ndarray:
    """How many genes each cell (row) expresses."""
    if sp.issparse(X):
        return np.asarray((X != 0).sum(axis=1)).ravel()
    return np.count_nonzero(np.asarray(X), axis=1)


def _hashes(names: Iterable, expressed: Iterable) -> np.ndarray:
    return np.array([int.from_bytes(hashlib.blake2b(f"{n}|{int(e)}".encode(), digest_size=8).digest(),
                                    "big") for n, e in zip(names, expressed, strict=True)],
                    dtype=np.uint64)


def cell_sketch(names: Iterable, expressed: Iterable, *, k: int = SKETCH_SIZE) -> dict:
    """The ``k`` smallest 64-bit hashes of the cells (hex), and how many cells there were.

    ``expressed``: each cell's number of expressed modelled genes (:func:`expressed_genes`).

    Examples
    --------
    >>> sketch = cell_sketch([f"c{i}" for i in range(10)], range(10), k=4)
    >>> sketch["n"], len(sketch["hashes"])
    (10, 4)
    """
    h = np.unique(_hashes(names, expressed))
    return {"n": int(len(h)), "hashes": [f"{v:016x}" for v in np.sort(h)[:k]]}


def sketch_overlap(sketch: dict, names: Iterable, expressed: Iterable) -> float | None:
    """The estimated fraction of the cells that were in the sketched set (None: too few to say).

    Names whose hash falls below the sketch's largest kept hash would have been kept had
    they been sketched; the fraction of those that were is the overlap.

    Examples
    --------
    >>> sketch = cell_sketch([f"c{i}" for i in range(100)], [5] * 100)
    >>> names = [f"c{i}" for i in range(50)]
    >>> sketch_overlap(sketch, names, [5] * 50), sketch_overlap(sketch, names, [6] * 50)
    (1.0, 0.0)
    """
    kept = np.array([int(v, 16) for v in sketch.get("hashes", [])], dtype=np.uint64)
    if kept.size == 0:
        return None
    full = sketch.get("n", 0) <= kept.size  # every name was kept: exact
    mine = np.unique(_hashes(names, expressed))
    candidates = mine if full else mine[mine <= kept.max()]
    if candidates.size < 5:
        return None
    return float(np.isin(candidates, kept).mean())
