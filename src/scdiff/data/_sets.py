"""Sets of perturbations in one cell: ``drug="drugA+drugB"`` with ``dose="10+100"``.

A condition value that joins several categories by ``+`` is a set: the cell got all of
them at once, in no order. Its dose, where the attribute has one, is one number per
member joined the same way (``"10+100"``), or a single number that every member got.
These two functions are the one reading of that spelling, for the model's condition
encoding and for the perturbation analyses alike.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from scdiff._errors import InputError

#: What joins the members of a set in a condition value, and their doses.
SET_SEP = "+"
_DOSE_SEP = re.compile(r"(?<![eE])\+")  # a "+" joining doses, not the one of "1e+06"


def members(value: object) -> list[str]:
    """The categories of a condition value: one, or the members of a ``+``-joined set.

    Members keep their spelling but lose surrounding spaces; the order is the one given
    (a set is order-free: callers that compare sets sort them).

    Examples
    --------
    >>> members("drugA+drugB"), members("control")
    (['drugA', 'drugB'], ['control'])
    """
    text = str(value)
    parts = [p.strip() for p in text.split(SET_SEP)] if SET_SEP in text else [text]
    if any(not p for p in parts):
        raise InputError(f"condition value {text!r} has an empty member; join a set's members "
                         f"with a single {SET_SEP!r} (e.g. 'drugA+drugB').")
    if len(set(parts)) != len(parts):
        raise InputError(f"condition value {text!r} names a member twice; a set holds each "
                         "perturbation once (give a larger dose instead).")
    return parts


def members_or_name(value: object) -> list[str]:
    """:func:`members`, or the value itself where it cannot be a set (``"CD34+"``).

    Examples
    --------
    >>> members_or_name("a+b"), members_or_name("CD34+")
    (['a', 'b'], ['CD34+'])
    """
    try:
        return members(value)
    except InputError:
        return [str(value)]


def member_doses(value: object, n_members: int, *, key: str = "dose") -> list[float]:
    """The dose of each of ``n_members`` members: ``"10+100"`` gives one per member, a
    single number is every member's.

    Examples
    --------
    >>> member_doses("10+100", 2), member_doses(50.0, 2), member_doses("1e+06", 1)
    ([10.0, 100.0], [50.0, 50.0], [1000000.0])
    """
    text = str(value).strip()
    parts = [p.strip() for p in _DOSE_SEP.split(text)]
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        raise InputError(f"dose column {key!r} has the value {text!r}, which is not a number or "
                         f"numbers joined by {SET_SEP!r} (e.g. '10+100')") from None
    if len(numbers) == 1:
        return numbers * n_members
    if len(numbers) != n_members:
        raise InputError(f"dose column {key!r} has {text!r}, {len(numbers)} doses for a set of "
                         f"{n_members} perturbations; give one dose per member, joined by "
                         f"{SET_SEP!r} in the members' order, or a single dose for all.")
    if not all(np.isfinite(numbers)):
        raise InputError(f"dose column {key!r} has {text!r}: doses must be finite.")
    return numbers


def is_set_column(values) -> bool:
    """Whether any value of a column (its distinct values) joins several members."""
    return any(SET_SEP in str(v) for v in values)


def reads_as_sets(labels, doses=()) -> bool:
    """Whether a condition column (``labels``, one per cell) holds sets of perturbations.

    A ``+`` is also part of ordinary names (``"CD14+ Monocyte"``), so a column is read as
    sets only where every member of every joined value is a value of its own in the column
    (``"a+b"`` beside ``"a"`` and ``"b"``), or where a dose column (``doses``: one array of
    text per dose) gives every cell with a joined value as many doses as members
    (``"a+b"`` at ``"10+100"``).

    Examples
    --------
    >>> reads_as_sets(["a", "b", "a+b"]), reads_as_sets(["CD14+ Monocyte", "B"])
    (True, False)
    >>> reads_as_sets(["a", "a+b"], [["10", "10+100"]])
    True
    """
    labels = np.asarray(labels, dtype=str)
    joined = np.char.find(labels, SET_SEP) >= 0
    if not joined.any():
        return False
    alone = {v.strip() for v in np.unique(labels[~joined])}
    try:
        if all(m in alone for v in np.unique(labels[joined]) for m in members(v)):
            return True
    except InputError:  # an empty or repeated member: a name, not a set
        return False
    n_members = np.char.count(labels[joined], SET_SEP) + 1
    return any(np.array_equal(_n_doses(np.asarray(dose)[joined]), n_members) for dose in doses)


def _n_doses(values: np.ndarray) -> np.ndarray:
    """How many doses each value gives (``"10+100"``: 2), each distinct value read once."""
    uniques, inverse = np.unique(values.astype(str), return_inverse=True)
    return np.array([len(_DOSE_SEP.split(u)) for u in uniques], dtype=np.int64)[inverse.ravel()]


def dose_numbers(values, *, key: str) -> np.ndarray:
    """Every dose a column gives, members' doses included, as one flat float array."""
    out = []
    for v in values:
        text = str(v)
        out += member_doses(text, len(_DOSE_SEP.split(text)), key=key)
    return np.asarray(out, dtype=np.float64)


def set_codes(labels, lookup, n_slots: int, null: int, *, key: str, where: str,
              valid: str) -> tuple[np.ndarray, np.ndarray]:
    """``(codes [n, n_slots], each row's number of members)`` of a set attribute's labels: a
    row's members in its first columns, ``null`` (no member) in the rest. ``lookup`` maps a
    category to its code; an unknown member or a larger set than ``n_slots`` is refused.
    Each distinct label is read once."""
    uniques, inverse = np.unique(np.asarray(labels, dtype=str), return_inverse=True)
    table = np.full((len(uniques), n_slots), null, dtype=np.int64)
    sizes = np.empty(len(uniques), dtype=np.int64)
    for u, value in enumerate(uniques):
        names = members(value)
        if len(names) > n_slots:
            raise InputError(f"{key}={value!r} in {where} holds {len(names)} members; the model was "
                             f"trained on sets of at most {n_slots}.")
        for j, name in enumerate(names):
            if name not in lookup:
                raise InputError(f"{key}={name!r} in {where} was not seen in training; "
                                 f"valid values of {key!r} are: {valid}.")
            table[u, j] = lookup[name]
        sizes[u] = len(names)
    inverse = inverse.ravel()
    return table[inverse], sizes[inverse]


def set_doses(values, n_members: np.ndarray, n_slots: int, *, key: str) -> np.ndarray:
    """Raw doses ``[n, n_slots]`` of a dose paired with a set attribute: one per member
    (NaN where a row has no member in that slot); each distinct (dose, set size) read once."""
    codes, uniques = pd.MultiIndex.from_arrays(
        [np.asarray(values).astype(str), np.asarray(n_members)]).factorize()
    table = np.full((len(uniques), n_slots), np.nan)
    for u, (value, n) in enumerate(uniques):
        table[u, :n] = member_doses(value, int(n), key=key)
    return table[codes]


def canonical(names: list[str], doses: list[float] | None = None) -> tuple[str, str | None]:
    """A set's label with its members sorted, and its doses in the same order (as text).

    Examples
    --------
    >>> canonical(["b", "a"], [1.0, 20.0])
    ('a+b', '20+1')
    """
    order = sorted(range(len(names)), key=lambda j: names[j])
    label = SET_SEP.join(names[j] for j in order)
    if doses is None:
        return label, None
    return label, SET_SEP.join(f"{doses[j]:g}" for j in order)
