"""Features that describe an attribute's categories: a numeric table per category, or
molecules by SMILES turned into Morgan fingerprints (RDKit, the ``chem`` extra).

``condition_features={"drug": table}`` gives every drug a row of numbers (descriptors,
targets, a fingerprint); the model embeds a drug from its row, so a drug that no training
cell has but the table describes can be generated (:class:`scdiff.nn.FeatureEmbedding`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from scdiff._errors import InputError, arg

#: Morgan fingerprints of SMILES: radius and number of bits (chemCPA's choice of radius).
MORGAN_RADIUS, MORGAN_BITS = 2, 512


def read_table(source, *, what: str) -> pd.DataFrame:
    """A DataFrame, or a ``.csv``/``.tsv``/``.parquet`` file read with its first column as
    the index (the categories)."""
    if isinstance(source, pd.DataFrame):
        return source
    if isinstance(source, pd.Series):
        return source.to_frame()
    if not isinstance(source, str | os.PathLike):
        raise InputError(f"{what} needs a pandas DataFrame or the path of a .csv or .parquet file, "
                         f"got {type(source).__name__}.")
    path = Path(source)
    if not path.is_file():
        raise InputError(f"{what}: {path} does not exist; give a .csv or .parquet file.")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        frame = pd.read_parquet(path)
        return frame.set_index(frame.columns[0]) if isinstance(frame.index, pd.RangeIndex) else frame
    if suffix in (".csv", ".tsv"):
        return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", index_col=0)
    raise InputError(f"{what}: {path} has extension {suffix or '(none)'!r}; give a .csv, .tsv or "
                     ".parquet file.")


def smiles_fingerprints(table: pd.DataFrame, *, what: str) -> pd.DataFrame:
    """Morgan fingerprint bits (radius 2, 512 bits) of each row's SMILES (the one column of
    ``table``, or its ``smiles`` column); a malformed SMILES is refused naming its row."""
    try:
        from rdkit import Chem, RDLogger
        from rdkit.Chem import rdFingerprintGenerator
    except ImportError:
        raise InputError(f"{what} needs RDKit to read SMILES: pip install 'scdiff[chem]', or give "
                         "numeric features with condition_features instead.") from None
    cols = [c for c in table.columns if str(c).lower() == "smiles"] or list(table.columns)
    if len(cols) != 1:
        raise InputError(f"{what} needs one column of SMILES (or one named 'smiles'); it has "
                         f"{', '.join(map(str, table.columns))}.")
    RDLogger.DisableLog("rdApp.*")
    generator = rdFingerprintGenerator.GetMorganGenerator(radius=MORGAN_RADIUS, fpSize=MORGAN_BITS)
    rows = []
    for name, text in table[cols[0]].items():
        mol = Chem.MolFromSmiles(str(text)) if isinstance(text, str) and text.strip() else None
        if mol is None:
            raise InputError(f"{what}: the SMILES of {name!r} ({text!r}) is not a valid molecule; "
                             "correct it or drop that row.")
        rows.append(generator.GetFingerprintAsNumPy(mol).astype(np.float32))
    return pd.DataFrame(np.stack(rows), index=table.index,
                        columns=[f"morgan_{i}" for i in range(MORGAN_BITS)])


def feature_tables(condition_features: Mapping | None, smiles: Mapping | None,
                   keys: Sequence[str]) -> dict[str, pd.DataFrame]:
    """Each described key's numeric table (index: category names as text), from
    ``condition_features`` and ``smiles`` (both mappings key -> table or file)."""
    out: dict[str, pd.DataFrame] = {}
    for name, given in (("condition_features", condition_features), ("smiles", smiles)):
        if given is None:
            continue
        if not isinstance(given, Mapping):
            raise InputError(f"{arg(name)} needs a mapping of condition key -> table, e.g. "
                             f"{{'drug': 'drug_features.csv'}}; got {type(given).__name__}.")
        for key, source in given.items():
            what = f"{arg(name)}[{key!r}]"
            if key not in keys:
                raise InputError(f"{what} describes {key!r}, which is not a condition of the model; "
                                 f"its conditions are: {', '.join(keys) or 'none'}.")
            if key in out:
                raise InputError(f"{key!r} is given both condition_features and smiles; give one.")
            table = read_table(source, what=what)
            out[key] = (smiles_fingerprints(table, what=what) if name == "smiles"
                        else numeric_table(table, what))
    return out


def numeric_table(table: pd.DataFrame, what: str) -> pd.DataFrame:
    """``table`` as floats, refused (naming ``what``) where a column is not numeric, a
    value is missing or there is no column."""
    bad = [c for c in table.columns if not pd.api.types.is_numeric_dtype(table[c])]
    if bad:
        raise InputError(f"{what} has a non-numeric column {bad[0]!r}; features must be numbers "
                         "(one row per category, the first column its name).")
    if table.isna().any().any():
        row = table.index[table.isna().any(axis=1)][0]
        raise InputError(f"{what} has missing values (row {row!r}); fill them or drop that row.")
    if table.shape[1] == 0:
        raise InputError(f"{what} has no feature columns.")
    return table.astype(np.float64)


def described(table: pd.DataFrame, key: str, categories: Sequence[str],
              untreated: Sequence[str]) -> tuple[list[str], np.ndarray, list[int]]:
    """``(categories beyond training's, standardised features of all, seen flags)`` of one key.

    Every training category needs a row, except an untreated one (``untreated``: all its
    cells at dose 0), which gets zero features and is carried by its own residual. Rows for
    categories no training cell has add categories that can be generated from features.
    """
    index = pd.Index(table.index.astype(str))
    if index.has_duplicates:
        raise InputError(f"the feature table of {key!r} has the row {index[index.duplicated()][0]!r} "
                         "twice; give each category once.")
    missing = [c for c in categories if c not in index and c not in untreated]
    if missing:
        raise InputError(f"the feature table of {key!r} has no row for {missing[0]!r}"
                         f"{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''}; add a row "
                         "for every category (the untreated one, dose 0, may be left out).")
    extra = sorted(c for c in index if c not in categories)
    values = table.to_numpy(dtype=np.float64)
    mean, sd = values.mean(axis=0), values.std(axis=0)
    z = np.where(sd > 0, (values - mean) / np.where(sd > 0, sd, 1.0), 0.0)
    rows = {c: z[j] for j, c in enumerate(index)}
    zero = np.zeros(values.shape[1])
    everything = [*categories, *extra]
    matrix = np.stack([rows.get(c, zero) for c in everything]).astype(np.float32)
    return extra, matrix, [1] * len(categories) + [0] * len(extra)
