"""Reading user files and writing results without ever leaving half a file."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from scdiff._errors import InputError, arg

TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq")


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise InputError(f"{path} does not exist; check the path.")
    if path.is_dir():
        raise InputError(f"{path} is a directory; give an .h5ad, .csv or .parquet file.")


def read_input(path: str | os.PathLike, *, conditions: Sequence[str] = ()) -> ad.AnnData:
    """Read an ``.h5ad`` file, or a ``.csv``/``.parquet`` table as AnnData.

    In a table, the columns named in ``conditions`` (and any non-numeric column)
    go to ``.obs``; the other numeric columns are the features.

    Examples
    --------
    >>> adata = read_input("data_examples/pbmc_train.h5ad")  # doctest: +SKIP
    """
    path = Path(path)
    _check_readable(path)
    suffix = path.suffix.lower()
    if suffix == ".h5ad":
        try:
            adata = ad.read_h5ad(path)
        except Exception as err:  # h5py/anndata raise many types for a damaged file
            raise InputError(
                f"{path} could not be read as .h5ad ({type(err).__name__}); the file may be "
                "truncated or not an AnnData file: write it again with adata.write_h5ad."
            ) from err
    elif suffix in TABLE_SUFFIXES:
        adata = _read_table(path, conditions)
    else:
        raise InputError(
            f"{path} has extension {suffix or '(none)'!r}; scdiff reads .h5ad, .csv, .tsv or .parquet."
        )
    check_anndata(adata, source=str(path))
    return adata


def _frame(path: Path, conditions: Sequence[str] = ()) -> pd.DataFrame:
    """A .csv/.tsv/.parquet file as a DataFrame, or one clear error."""
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        # condition columns stay text: "00" and "0" are different labels
        return pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",",
                           dtype={c: str for c in conditions})
    except ImportError as err:
        raise InputError(f"reading {path} needs pyarrow: pip install pyarrow.") from err
    except Exception as err:
        reason = " ".join(str(err).split())
        raise InputError(f"{path} could not be read as a table ({type(err).__name__}: {reason}).") from err


def _read_table(path: Path, conditions: Sequence[str]) -> ad.AnnData:
    return frame_to_anndata(_frame(path, conditions), conditions, source=path.name)


def read_table(path: str | os.PathLike, *, conditions: Sequence[str] = ()) -> pd.DataFrame:
    """A ``.csv``/``.tsv``/``.parquet`` file as a DataFrame (the ``conditions`` columns of a
    text file read as text), or one clear error."""
    path = Path(path)
    _check_readable(path)
    if path.suffix.lower() not in TABLE_SUFFIXES:
        raise InputError(f"{path} has extension {path.suffix or '(none)'!r}; a table is read from "
                         ".csv, .tsv or .parquet.")
    frame = _frame(path, conditions)
    check_columns(frame, conditions, source=path.name)
    return frame


def typed_conditions(frame: pd.DataFrame, path: str | os.PathLike, conditions: Sequence[str]) -> pd.DataFrame:
    """``frame`` (read by :func:`read_table`) with its ``conditions`` columns as pandas
    infers them rather than as text: a plain table's label column of 0/1/2 stays integers,
    so its samples write it back as the file held it (only those columns are read again)."""
    path = Path(path)
    if not conditions or path.suffix.lower() in (".parquet", ".pq"):
        return frame  # parquet keeps its dtypes
    typed = pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",", usecols=list(conditions))
    return frame.assign(**{c: typed[c].to_numpy() for c in conditions})


def check_columns(frame: pd.DataFrame, conditions: Sequence[str], *, source: str) -> None:
    """Refuse a table that lacks a column named in ``conditions``."""
    missing = [c for c in conditions if c not in frame.columns]
    if missing:
        raise InputError(
            f"column {missing[0]!r} not found in {source}; the columns there are: "
            f"{', '.join(map(str, frame.columns))}."
        )


def frame_to_anndata(frame: pd.DataFrame, conditions: Sequence[str], *, source: str = "the table"
                     ) -> ad.AnnData:
    """A table read as expression: the ``conditions`` columns (and any non-numeric column)
    go to ``.obs``, the other numeric columns are the features."""
    check_columns(frame, conditions, source=source)
    obs_cols = [c for c in frame.columns if c in conditions or not pd.api.types.is_numeric_dtype(frame[c])]
    feat_cols = [c for c in frame.columns if c not in obs_cols]
    X = frame[feat_cols].to_numpy(dtype=np.float32)
    obs = frame[obs_cols].copy()
    obs.index = obs.index.astype(str)
    # marked as a table, so advice about its values speaks of columns, not of scanpy
    return ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=[str(c) for c in feat_cols]),
                      uns={"scdiff_input": "table"})


def check_anndata(adata: ad.AnnData, *, source: str = "the AnnData") -> None:
    """Refuse data that no step could use: no cells, no genes, duplicate names."""
    if adata.n_obs == 0:
        raise InputError(f"{source} has no cells; give data with at least a few hundred cells.")
    if adata.n_vars == 0:
        raise InputError(f"{source} has no genes (no feature columns); check the file.")
    if not adata.var_names.is_unique:
        dup = adata.var_names[adata.var_names.duplicated()][0]
        raise InputError(
            f"{source} has duplicate gene names (e.g. {dup!r}); run adata.var_names_make_unique()."
        )
    if not adata.obs_names.is_unique:
        dup = adata.obs_names[adata.obs_names.duplicated()][0]
        raise InputError(
            f"{source} has duplicate cell names (e.g. {dup!r}); run adata.obs_names_make_unique()."
        )


def check_out_dir(path: str | os.PathLike, *, overwrite: bool, name: str = "out",
                  hint: str | None = None, error: type[Exception] = InputError) -> Path:
    """Refuse an output folder that is a file, or that already holds something unless ``overwrite``.

    ``name`` is the parameter that gave ``path`` (messages tell the user to change it).
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise error(f"{path} exists and is not a directory; choose another {arg(name)}.")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        hint = hint or f"choose another {arg(name)} or pass {arg('overwrite', True)}"
        raise error(f"{path} already exists and is not empty; {hint}.")
    return path


def umask() -> int:
    """The process's file-creation mask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary name in the same folder, then rename over ``path``.

    A crash or a full disk leaves any previous file at ``path`` intact. The file gets the
    permissions the umask gives a new file (the temporary one is created private), so a
    colleague on a shared server reads it as they would any other of the user's files.
    """
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~umask())
        os.replace(tmp, path)
    except OSError as err:
        raise InputError(f"could not write {path} ({_first_line(err)}); check the space and "
                         "permissions there, or choose another location.") from err
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _first_line(err: OSError) -> str:
    """An OS or HDF5 error in one line (HDF5 ones span several)."""
    text = err.strerror or str(err)
    return " ".join(text.split("\n")[0].split()) or type(err).__name__


def check_output(path: str | os.PathLike, *, overwrite: bool, suffixes: Sequence[str]) -> Path:
    """Check an output path before any work is done: suffix, existence, writable folder."""
    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise InputError(f"output {path} needs one of the extensions {', '.join(suffixes)}.")
    if path.is_dir():
        raise InputError(f"output {path} is a directory; give a file name.")
    if path.exists() and not overwrite:
        raise InputError(f"{path} already exists; choose another name or pass {arg('overwrite', True)}.")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        raise InputError(f"folder {parent} does not exist; create it first.")
    if not parent.is_dir():
        raise InputError(f"{parent} is a file, not a folder; choose another output location.")
    if not os.access(parent, os.W_OK):
        raise InputError(f"folder {parent} is not writable; choose another output location.")
    return path


def write_h5ad(adata: ad.AnnData, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write ``adata`` to ``.h5ad`` (or ``.csv``) atomically, refusing to overwrite by default."""
    path = check_output(path, overwrite=overwrite, suffixes=(".h5ad", ".csv"))
    if path.suffix.lower() == ".csv":
        def write(tmp: Path) -> None:
            frame = adata.to_df()
            for col in adata.obs.columns:
                frame.insert(0, col, adata.obs[col].to_numpy())
            frame.to_csv(tmp, index_label="cell")
    else:
        def write(tmp: Path) -> None:
            adata.write_h5ad(tmp)
    return atomic_write(path, write)


def write_table(frame: pd.DataFrame, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write a table to ``.csv`` (no index) or ``.parquet`` (dtypes and categories kept)
    atomically, refusing to overwrite by default."""
    path = check_output(path, overwrite=overwrite, suffixes=(".csv", ".parquet"))
    frame = frame.copy()
    frame.attrs = {}  # provenance is not a column; parquet would store it as metadata text

    def write(tmp: Path) -> None:
        if path.suffix.lower() == ".parquet":
            try:
                frame.to_parquet(tmp, index=False)
            except ImportError as err:
                raise InputError(f"writing {path} needs pyarrow: pip install pyarrow.") from err
        else:
            frame.to_csv(tmp, index=False)
    return atomic_write(path, write)


def read_obs(path: str | os.PathLike, *, conditions: Sequence[str] = ()) -> pd.DataFrame:
    """Only the ``.obs`` of an ``.h5ad`` (its expression is never read), or a table's columns
    (read as ``read_input`` reads them: the ``conditions`` columns as text)."""
    path = Path(path)
    _check_readable(path)
    suffix = path.suffix.lower()
    if suffix in TABLE_SUFFIXES:
        return _frame(path, conditions)
    if suffix != ".h5ad":
        raise InputError(f"{path} has extension {suffix!r}; {arg('like')} reads .h5ad, .csv or .parquet.")
    import h5py
    from anndata.io import read_elem

    try:
        with h5py.File(path, "r") as fh:
            return read_elem(fh["obs"])
    except Exception as err:
        raise InputError(f"{path} could not be read as .h5ad ({type(err).__name__}); "
                         "the file may be truncated or not an AnnData file.") from err
