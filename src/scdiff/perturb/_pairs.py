"""Which categorical attribute each dose belongs to (the drug-by-dose interaction)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from scdiff._errors import InputError
from scdiff.nn import DOSE_ENCODERS


def check_dose_encoder(kind: str) -> str:
    """``kind`` if it names a dose encoder, else an :class:`~scdiff.InputError`."""
    if kind not in DOSE_ENCODERS:
        raise InputError(f"dose_encoder {kind!r} needs to be one of {', '.join(DOSE_ENCODERS)}.")
    return kind


def check_additive(additive: bool | str, n_attributes: int) -> bool:
    """Whether the network gets its additive path: ``"auto"`` means with two or more
    attributes (there are combinations to compose), and never without any (nothing to
    add); a value other than True, False or "auto" is an :class:`~scdiff.InputError`.

    Examples
    --------
    >>> check_additive("auto", 1), check_additive("auto", 3), check_additive(True, 1), check_additive(True, 0)
    (False, True, True, False)
    """
    if additive == "auto":
        return n_attributes >= 2
    if isinstance(additive, (bool, np.bool_)):
        return bool(additive) and n_attributes > 0
    raise InputError(f"additive = {additive!r} needs to be True, False or 'auto'.")


def _has_zero_dose_category(obs: pd.DataFrame, key: str, dose_key: str) -> bool:
    dose = pd.to_numeric(obs[dose_key], errors="coerce").to_numpy(dtype=float)
    labels = obs[key].astype(str).to_numpy()
    treated = set(labels[dose != 0])
    return any(lab not in treated for lab in np.unique(labels)) and bool((dose != 0).any())


def dose_pairs(
    obs: pd.DataFrame,
    keys: Sequence[str],
    dose_keys: Sequence[str],
    dose_by: str | Mapping[str, str] | None,
) -> list[int]:
    """For each dose key, the index in ``keys`` of the attribute it interacts with, or -1.

    ``dose_by="auto"`` pairs a dose with the one condition that has a category whose
    cells all have dose 0 (a control); with none or several such conditions, no pair.

    Examples
    --------
    >>> obs = pd.DataFrame({"cell_type": ["a", "a", "b", "b"],
    ...                     "drug": ["ctrl", "X", "ctrl", "X"], "dose": [0, 10, 0, 5]})
    >>> dose_pairs(obs, ["cell_type", "drug"], ["dose"], "auto")
    [1]
    >>> dose_pairs(obs, ["cell_type", "drug"], ["dose"], None)
    [-1]
    """
    keys, dose_keys = list(keys), list(dose_keys)
    if dose_by is None:
        return [-1] * len(dose_keys)
    if isinstance(dose_by, str) and dose_by == "auto":
        out = []
        for dk in dose_keys:
            hits = [i for i, k in enumerate(keys) if _has_zero_dose_category(obs, k, dk)]
            out.append(hits[0] if len(hits) == 1 else -1)
        return out
    mapping = {dk: dose_by for dk in dose_keys} if isinstance(dose_by, str) else dict(dose_by)
    unknown = sorted(set(mapping) - set(dose_keys))
    if unknown:
        raise InputError(f"dose_by names dose(s) {unknown} the model does not have; "
                         f"its doses are: {', '.join(dose_keys) or 'none'}.")
    out = []
    for dk in dose_keys:
        key = mapping.get(dk)
        if key is not None and key not in keys:
            raise InputError(f"dose_by pairs {dk!r} with {key!r}, which is not a condition; "
                             f"use one of: {', '.join(keys) or 'none (give --condition)'}.")
        out.append(keys.index(key) if key is not None else -1)
    return out
