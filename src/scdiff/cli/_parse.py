"""Parsing of the command line's KEY=VALUE options into the Python values the library takes."""

from __future__ import annotations

import math
from collections.abc import Sequence

from scdiff._errors import InputError


def parse_assignments(items: Sequence[str] | None, *, option: str) -> dict[str, str]:
    """``["cell_type=B", "drug=X"]`` -> ``{"cell_type": "B", "drug": "X"}``.

    Examples
    --------
    >>> parse_assignments(["cell_type=CD14+ Monocyte"], option="--condition")
    {'cell_type': 'CD14+ Monocyte'}
    """
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise InputError(f"{option} {item!r} needs the form KEY=VALUE, e.g. {option} cell_type=B.")
        if key in out and out[key] != value:
            raise InputError(f"{option} gives {key!r} twice ({out[key]!r} and {value!r}); give it once.")
        out[key] = value
    return out


def parse_number(text: str, *, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"{what} {text!r} is not a number.") from None
    if not math.isfinite(value):
        raise InputError(f"{what} {text!r} needs to be a finite number.")
    return value


def parse_doses(items: Sequence[str] | None) -> dict[str, float | str]:
    """``["dose=0.5"]`` -> ``{"dose": 0.5}``; values must be finite numbers, or one per member
    of a set of perturbations joined by ``+`` (``dose=10+100``, kept as text).

    Whether a negative value is allowed is the model's call (a dose trained on values
    >= 0 refuses it; a covariate such as a cell-cycle score accepts it).
    """
    out: dict[str, float | str] = {}
    for key, value in parse_assignments(items, option="--dose").items():
        numbers = [parse_number(v.strip(), what=f"--dose {key}=") for v in value.split("+")]
        out[key] = value if len(numbers) > 1 else numbers[0]
    return out


def parse_features(features: Sequence[str] | None, smiles: Sequence[str] | None) -> dict:
    """``--condition-features drug=f.csv`` and ``--smiles drug=s.csv`` as the library's
    ``condition_features`` and ``smiles`` (absent when not given)."""
    out = {"condition_features": parse_assignments(features, option="--condition-features"),
           "smiles": parse_assignments(smiles, option="--smiles")}
    return {k: v for k, v in out.items() if v}


def parse_guidance(items: Sequence[str] | None) -> float | dict[str, float]:
    """``["2"]`` -> 2.0 (all attributes); ``["drug=4", "cell_line=1"]`` -> per attribute."""
    items = list(items or [])
    if not items:
        return 1.0
    if len(items) == 1 and "=" not in items[0]:
        return parse_number(items[0], what="--guidance")
    if any("=" not in i for i in items):
        raise InputError("--guidance takes one number, or KEY=WEIGHT for each attribute, not both.")
    return {k: parse_number(v, what=f"--guidance {k}=") for k, v in
            parse_assignments(items, option="--guidance").items()}


def parse_threads(text: str) -> int | str:
    """``"auto"`` or a whole number of threads (checked by the library)."""
    text = text.strip()
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise InputError(f"--threads {text!r} needs to be a whole number or auto.") from None
