"""How a model's conditions reach its network: which dose belongs to which drug, sets of
perturbations, categories described by features, and the additive path."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from scdiff._errors import InputError, arg
from scdiff.data import ConditionEncoder
from scdiff.data._features import described, feature_tables
from scdiff.nn import DOSE_ENCODERS

#: The noise on a drug's standardised features in training (docs/perturbation.md).
FEATURE_NOISE = 0.3


def network_conditions(obs: pd.DataFrame, encoder: ConditionEncoder, dim: int, network: Mapping,
                       dose_encoder: str, dose_by, additive, condition_features, smiles) -> dict:
    """The network's keyword arguments for these conditions (their sets and features too)."""
    pairs = dose_pairs(obs, encoder.keys, encoder.dose_keys, dose_by)
    features = describe_conditions(obs, encoder, pairs, condition_features, smiles)
    config = {
        "n_genes": dim, "n_categories": encoder.n_categories,
        "n_doses": len(encoder.dose_keys), "width": int(network["width"]),
        "depth": int(network["depth"]), "dropout": float(network["dropout"]),
        "dose_encoder": check_dose_encoder(dose_encoder), "dose_pairs": pairs,
        "additive": check_additive(additive, len(encoder.keys) + len(encoder.dose_keys)),
    }
    if any(s > 1 for s in encoder.key_slots) or any(features):  # plain models keep their config
        config.update(slots=encoder.key_slots, features=features)
    # a perturbation design (a dose paired with its drug): the main effects add up in a mean
    # model fitted first, the diffusion models each cell's departure from it
    # (docs/perturbation.md); other designs keep the additive path
    mean = config["additive"] and any(p >= 0 for p in pairs)
    if mean:
        sets = measured_sets(obs, encoder, pairs)
        config.update(additive=False, mean={"sets": sets} if sets else {})
    if any(features[p] for p in pairs if p >= 0):  # a drug described by features (measured:
        # docs/perturbation.md): its features seen with noise, and (on the additive path) no
        # offset of its own
        config.update(feature_noise=FEATURE_NOISE, **({} if mean else {"drug_offset": False}))
    return config


def describe_conditions(obs: pd.DataFrame, encoder: ConditionEncoder, pairs: list[int],
                        condition_features: Mapping | None, smiles: Mapping | None) -> list[dict | None]:
    """Sets and features: pair each dose with its key in ``encoder`` (a set's dose needs its
    key), and each described key's features for the network (``None`` for the others), its
    categories known only from the features added to ``encoder``."""
    encoder.dose_pairs = list(pairs)
    for i, key in enumerate(encoder.dose_keys):
        if encoder.dose_text[i] and (pairs[i] < 0 or encoder.key_slots[pairs[i]] == 1):
            raise InputError(f"dose column {key!r} gives several doses in a cell (e.g. '10+100') but "
                             "no condition holds sets of perturbations to give them to; write the "
                             "perturbations as a set (drug='drugA+drugB') or pair the dose with "
                             f"{arg('dose_by')}.")
    tables = feature_tables(condition_features, smiles, encoder.keys)
    out: list[dict | None] = [None] * len(encoder.keys)
    for key, table in tables.items():
        i = encoder.keys.index(key)
        untreated = _untreated(obs, key, [encoder.dose_keys[d] for d, p in enumerate(pairs) if p == i])
        extra, matrix, seen = described(table, key, encoder.categories[i], untreated)
        encoder.add_categories(key, extra)
        out[i] = {"table": matrix.tolist(), "seen": seen}
    return out


def _untreated(obs: pd.DataFrame, key: str, dose_keys: list[str]) -> list[str]:
    """The categories of ``key`` whose cells all have dose 0 in every one of ``dose_keys``."""
    if not dose_keys:
        return []
    labels = obs[key].astype(str).to_numpy()
    zero = np.ones(len(obs), dtype=bool)
    for dk in dose_keys:
        zero &= pd.to_numeric(obs[dk].astype(str), errors="coerce").to_numpy(dtype=float) == 0
    treated = set(labels[~zero])
    return sorted(set(labels) - treated)


def check_dose_encoder(kind: str) -> str:
    """``kind`` if it names a dose encoder, else an :class:`~scdiff.InputError`."""
    if kind not in DOSE_ENCODERS:
        raise InputError(f"{arg('dose_encoder', kind)} needs to be one of {', '.join(DOSE_ENCODERS)}.")
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
    raise InputError(f"{arg('additive', additive)} needs to be True, False or 'auto'.")


def _has_zero_dose_category(obs: pd.DataFrame, key: str, dose_key: str) -> bool:
    """Whether some categories of ``key`` are untreated (all at dose 0) and others are not."""
    untreated = _untreated(obs, key, [dose_key])
    return bool(untreated) and len(untreated) < obs[key].astype(str).nunique()


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
                             f"use one of: {', '.join(keys) or 'none (give ' + arg('condition') + ')'}.")
        out.append(keys.index(key) if key is not None else -1)
    return out


def measured_sets(obs: pd.DataFrame, encoder: ConditionEncoder,
                  pairs: list[int]) -> dict[str, list[list[int]]]:
    """The sets of two or more members measured in ``obs``, per set attribute paired with a
    dose (codes, sorted): the mean model learns an interaction for each. Each distinct
    condition is encoded once (the training cells are encoded in full later, for training)."""
    columns = list(dict.fromkeys([*encoder.keys, *encoder.dose_keys]))
    codes, _ = encoder.encode(obs[columns].drop_duplicates(), where="the training cells")
    out, start = {}, 0
    for i, n in enumerate(encoder.key_slots):
        block = codes[:, start:start + n]
        start += n
        if n < 2 or i not in pairs:
            continue
        null = encoder.n_categories[i]
        # each distinct set once, its members sorted (the null code, the largest, pads the end)
        found = np.unique(np.sort(block[(block != null).sum(1) > 1], axis=1), axis=0)
        if len(found):
            out[str(i)] = [[int(c) for c in row if c != null] for row in found]
    return out
