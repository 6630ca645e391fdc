"""Writing generated cells to a file: in one piece, or chunk by chunk when they are many.

Each chunk comes from a ``sample`` function (the model's); chunk 0 uses the seed the user
gave and chunk ``i`` a seed drawn from ``(seed, i)``, so up to one chunk the file holds
exactly what one ``sample(seed=seed)`` call returns.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from scdiff._errors import InputError, arg
from scdiff._progress import progress_bar
from scdiff.data._io import atomic_write, check_output, write_h5ad, write_table
from scdiff.model._generate import check_n_cells

#: Cells per chunk when a sample is written chunk by chunk (memory stays bounded by one).
STREAM_CHUNK = 32768
#: What a sample can be written as (.parquet: a table model's rows).
SAMPLE_SUFFIXES = (".h5ad", ".csv", ".parquet")
#: What a table model's rows can be written as.
TABLE_OUT_SUFFIXES = (".csv", ".parquet")


def check_sample_suffix(path: str | os.PathLike, *, tabular: bool) -> None:
    """Refuse an output a model of this kind cannot write: a table's rows go to .csv or
    .parquet, cells to .h5ad or .csv."""
    suffix = Path(path).suffix.lower()
    if tabular and suffix not in TABLE_OUT_SUFFIXES:
        raise InputError(f"output {path}: a table model writes .csv or .parquet (the table's own "
                         "columns and dtypes); choose one of those.")
    if not tabular and suffix == ".parquet":
        raise InputError(f"output {path}: generated cells are written as .h5ad or .csv; .parquet "
                         "is for a table model's rows.")


def chunk_seed(seed: int, i: int) -> int:
    """The seed of chunk ``i`` of a streamed sample (chunk 0 keeps the user's)."""
    return seed if i == 0 else int(np.random.SeedSequence([seed, i]).generate_state(1)[0])


def sample_to_h5ad(sample: Callable[..., ad.AnnData], path: str | os.PathLike, n_cells: int | None,
                   *, like: ad.AnnData | pd.DataFrame | None, chunk_size: int, seed: int,
                   overwrite: bool, progress: bool, **options) -> Path:
    """Generate cells into an ``.h5ad``, ``chunk_size`` at a time, ``X`` as CSR."""
    from scdiff.data._write import write_h5ad_chunks

    path = check_output(path, overwrite=overwrite, suffixes=(".h5ad",))
    if chunk_size < 1:
        raise InputError(f"{arg('chunk_size', chunk_size)} needs to be at least 1.")
    frame = None if like is None else (like.obs if isinstance(like, ad.AnnData) else like)
    total = len(frame) if frame is not None else (1000 if n_cells is None else n_cells)
    if frame is None:
        check_n_cells(total)
    starts = range(0, int(total), chunk_size)

    def chunks():
        prefix = None
        with progress_bar("sampling", len(starts), enabled=progress) as bar:
            for i, a in enumerate(starts):
                b = min(a + chunk_size, total)
                s = chunk_seed(seed, i)
                part = (sample(like=frame.iloc[a:b], seed=s, sparse=True, **options)
                        if frame is not None else sample(b - a, seed=s, sparse=True, **options))
                if i == 0:  # the file's cells are named as the first chunk's, numbered on
                    prefix = str(part.obs_names[0]).rsplit("-", 1)[0]
                    part.uns["scdiff"]["chunk_size"] = int(chunk_size)
                part.obs.index = pd.Index([f"{prefix}-{j}" for j in range(a, b)])
                bar.advance()
                yield part

    atomic_write(path, lambda tmp: write_h5ad_chunks(tmp, chunks()))
    return path


def sample_to_file(sample: Callable[..., ad.AnnData], path: str | os.PathLike, n_cells: int | None,
                   *, like=None, from_=None, seed: int, overwrite: bool, progress: bool,
                   chunk_size: int = STREAM_CHUNK, **options) -> tuple[Path, int, bool]:
    """Generate cells into ``path`` (.h5ad or .csv); returns (path, cells written, streamed).

    An ``.h5ad`` of more than ``chunk_size`` cells is written chunk by chunk, so memory
    stays bounded however many cells are asked for; anything else is generated in one
    piece and written atomically.
    """
    path = check_output(path, overwrite=overwrite, suffixes=SAMPLE_SUFFIXES)
    frame = None if like is None else (like.obs if isinstance(like, ad.AnnData) else like)
    n_out = len(frame) if frame is not None else (1000 if n_cells is None else n_cells)
    if from_ is None and path.suffix.lower() == ".h5ad" and n_out > chunk_size:
        sample_to_h5ad(sample, path, n_cells if frame is None else None, like=frame,
                       chunk_size=chunk_size, seed=seed, overwrite=overwrite, progress=progress,
                       **options)
        return path, int(n_out), True
    fake = sample(n_cells, like=frame, from_=from_, seed=seed, progress=progress, **options)
    if isinstance(fake, pd.DataFrame):  # a table model's rows
        write_table(fake, path, overwrite=overwrite)
        return path, len(fake), False
    write_h5ad(fake, path, overwrite=overwrite)
    return path, fake.n_obs, False
