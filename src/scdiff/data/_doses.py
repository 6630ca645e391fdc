"""Dose columns: numbers, or text giving one dose per member of a set (``"10+100"``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from scdiff._errors import InputError
from scdiff.data._sets import dose_numbers, is_set_column


def numeric_dose(obs: pd.DataFrame, key: str, *, allow_negative: bool = False) -> np.ndarray:
    col = obs[key]
    values = pd.to_numeric(col.astype(object) if col.dtype == "category" else col, errors="coerce")
    bad = values.isna() & col.notna()
    if bad.any():
        example = col[bad].iloc[0]
        raise InputError(
            f"dose column {key!r} has non-numeric values (e.g. {example!r}); doses must be numbers."
        )
    if values.isna().any():
        raise InputError(
            f"dose column {key!r} has {int(values.isna().sum())} missing values; "
            "fill them (e.g. 0 for untreated cells) or drop those cells."
        )
    arr = values.to_numpy(dtype=np.float64)
    if (arr < 0).any() and not allow_negative:
        raise InputError(f"dose column {key!r} has negative values (min {arr.min():g}), which "
                         "its training data did not have; doses must be >= 0.")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"dose column {key!r} has infinite values; doses must be finite.")
    return arr


def _texts(obs: pd.DataFrame, key: str):
    """The distinct values of a text (or categorical) column; none for a numeric one."""
    col = obs[key]
    text = col.dtype.kind in "OSUT" or isinstance(col.dtype, pd.CategoricalDtype)
    return col.astype(str).unique() if text else []


def gives_set_doses(obs: pd.DataFrame, key: str) -> bool:
    """Whether a dose column is text giving sets of doses (``"10+100"``)."""
    return is_set_column(_texts(obs, key))


def training_doses(obs: pd.DataFrame, key: str) -> tuple[np.ndarray, bool]:
    """Every training dose of a dose column (members' doses of sets included), and whether
    the column is text that gives sets of doses (``"10+100"``)."""
    values = _texts(obs, key)
    if not is_set_column(values):
        return numeric_dose(obs, key, allow_negative=True), False
    if obs[key].isna().any():
        raise InputError(f"dose column {key!r} has {int(obs[key].isna().sum())} missing values; "
                         "fill them (e.g. 0 for untreated cells) or drop those cells.")
    return dose_numbers(values, key=key), True


def dose_label(value) -> str:
    """A dose as text: a number in its shortest form, a set's doses as given."""
    if isinstance(value, str):
        return value.strip()
    return f"{float(value):g}"
