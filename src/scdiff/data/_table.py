"""Plain tables (not expression): which inputs are tables, and the reversible encoding of
their columns.

A table's columns become numbers the diffusion models and come back as they were
(TabDDPM's recipe, with one-hot blocks in the same Gaussian diffusion):

- a numeric column goes through its quantile transform to a standard normal, learned on
  the training table and inverted on output; integer columns are rounded back and every
  value stays within the training range;
- a categorical, text or boolean column becomes a one-hot block, decoded by argmax;
- a missing number becomes an indicator column beside its (median-filled) value and comes
  back as a missing value where the indicator says so; a missing category is a category.

Everything fitted is JSON (the quantiles of each column), so a run reloads without the
table, and the output has the training table's columns, order, dtypes and categories.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
from scipy.special import ndtr, ndtri

from scdiff._errors import InputError, arg

#: What ``kind`` may be: how an input is modelled.
KINDS = ("auto", "expression", "tabular")
#: ``kind="auto"`` reads a table as expression only when it has at least this many feature
#: columns, every one numeric and complete (expression panels have hundreds of genes).
EXPRESSION_MIN_COLUMNS = 100
#: Quantiles kept per numeric column (every value of a smaller table).
N_QUANTILES = 1000
#: Probabilities are kept this far inside (0, 1), so the normal scores stay finite (+-5.2).
_EPS = 1e-7
#: A text column with more distinct values than this, and more than half its rows distinct,
#: is an identifier, not a category.
MAX_LEVELS = 100
#: The label of the category a missing value becomes.
MISSING = "<missing>"


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise InputError(f"{arg('kind', kind)} needs to be one of {', '.join(KINDS)}.")
    return kind


def _is_number(col: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)


def table_kind(frame: pd.DataFrame, conditions, kind: str = "auto") -> str:
    """``"tabular"`` or ``"expression"``: ``kind`` where given; for ``"auto"``, expression
    when the table has at least :data:`EXPRESSION_MIN_COLUMNS` feature columns, all numeric
    and without missing values, else a table.

    Examples
    --------
    >>> table_kind(pd.DataFrame({"age": [30, 41], "sex": ["F", "M"]}), ["sex"])
    'tabular'
    """
    if check_kind(kind) != "auto":
        return kind
    feats = frame.drop(columns=[c for c in conditions if c in frame.columns])
    if feats.shape[1] < EXPRESSION_MIN_COLUMNS:
        return "tabular"
    if not all(_is_number(feats[c]) for c in feats.columns) or feats.isna().to_numpy().any():
        return "tabular"
    return "expression"


def frame_of(adata: ad.AnnData) -> pd.DataFrame:
    """An AnnData as one table: its features, then its obs columns."""
    X = adata.X.toarray() if hasattr(adata.X, "toarray") else np.asarray(adata.X)
    frame = pd.DataFrame(X, columns=[str(v) for v in adata.var_names])
    for col in adata.obs.columns:
        frame[col] = adata.obs[col].to_numpy()
    return frame


def _json(value: Any) -> Any:
    """A category's value as JSON keeps it (numpy scalars become Python ones)."""
    return value.item() if isinstance(value, np.generic) else value


# -- the quantile transform (numbers <-> standard normal scores) -------------------------------
def to_normal(x: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """Normal scores of ``x`` under the empirical distribution its ``quantiles`` describe.

    A value's probability is interpolated from the quantiles both ways and averaged, so a
    value many rows share (a spike) gets the middle of its probability range.

    Examples
    --------
    >>> q = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    >>> to_normal(np.array([2.0, 0.0]), q).round(3).tolist()
    [0.0, -5.199]
    """
    q = np.asarray(quantiles, dtype=np.float64)
    refs = np.linspace(0.0, 1.0, len(q))
    x = np.asarray(x, dtype=np.float64)
    p = 0.5 * (np.interp(x, q, refs) - np.interp(-x, -q[::-1], -refs[::-1]))
    return ndtri(_EPS + (1 - 2 * _EPS) * p)  # kept inside (0, 1) by an affine map, undone below


def from_normal(z: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """The inverse of :func:`to_normal`: normal scores back to the column's values.

    Examples
    --------
    >>> q = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    >>> from_normal(np.array([0.0, 0.6745]), q).round(3).tolist()
    [2.0, 3.0]
    """
    q = np.asarray(quantiles, dtype=np.float64)
    p = (ndtr(np.asarray(z, dtype=np.float64)) - _EPS) / (1 - 2 * _EPS)
    return np.interp(p, np.linspace(0.0, 1.0, len(q)), q)


# -- the codec ---------------------------------------------------------------------------------
@dataclass
class TableCodec:
    """The encoding of a training table's modelled columns, and the table's own shape.

    Attributes
    ----------
    columns
        One spec per modelled column, in table order: ``{"name", "type": "numeric"}`` with
        ``dtype``, ``integer``, ``quantiles``, ``min``, ``max``, ``missing`` (an indicator
        column follows), ``median``; or ``{"name", "type": "categorical"}`` with ``dtype``,
        ``labels`` (as text), ``values`` (as in the table), ``ordered``, ``missing``.
    order
        Every column of the training table, the conditions included, in order.
    condition_dtypes
        The conditions' dtypes in the training table (text comes back as text).
    """

    columns: list[dict]
    order: list[str]
    condition_dtypes: dict[str, str] = field(default_factory=dict)

    @classmethod
    def fit(cls, frame: pd.DataFrame, conditions=()) -> TableCodec:
        """Learn each column's encoding from the training table (``conditions`` are the
        model's attributes, left out)."""
        if not isinstance(frame, pd.DataFrame):
            raise InputError(f"a table needs to be a pandas DataFrame, got {type(frame).__name__}.")
        if len(frame) == 0:
            raise InputError("the table has no rows; give a table with at least a few dozen rows.")
        names = [str(c) for c in frame.columns]
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise InputError(f"the table has two columns named {dup!r}; rename one.")
        specs = [_fit_column(str(c), frame[c]) for c in frame.columns if c not in set(conditions)]
        if not specs:
            raise InputError("the table has no columns to generate besides the conditions; give "
                             "a table with feature columns.")
        return cls(specs, names, {str(c): str(frame[c].dtype) for c in conditions})

    @property
    def features(self) -> list[str]:
        """The encoded columns' names (``col``, ``col (missing)``, ``col=value``)."""
        out = []
        for s in self.columns:
            if s["type"] == "numeric":
                out += [s["name"]] + ([f"{s['name']} (missing)"] if s["missing"] else [])
            else:
                out += [f"{s['name']}={lab}" for lab in s["labels"]]
        return out

    def encode(self, frame: pd.DataFrame, *, where: str = "the table") -> np.ndarray:
        """The encoded rows of ``frame`` (float32, one column per :attr:`features`)."""
        missing = [s["name"] for s in self.columns if s["name"] not in frame.columns]
        if missing:
            raise InputError(f"{where} lacks the column(s) {missing} the model was trained on.")
        blocks = []
        for s in self.columns:
            col = frame[s["name"]]
            if s["type"] == "numeric":
                x, gone = filled_numbers(col, s)
                blocks.append(to_normal(x, np.asarray(s["quantiles"]))[:, None])
                if s["missing"]:
                    blocks.append(gone.astype(np.float64)[:, None])
            else:
                labels = _labels(col)
                unseen = ~labels.isin(s["labels"])
                if unseen.any():
                    raise InputError(f"column {s['name']!r} of {where} holds {labels[unseen].iloc[0]!r}, "
                                     f"which the training table never did; its values are: "
                                     f"{', '.join(s['labels'])}.")
                blocks.append(one_hot(col, s))
        return np.hstack(blocks).astype(np.float32)

    def decode(self, x: np.ndarray, conditions: pd.DataFrame,
               rng: np.random.Generator | None = None) -> pd.DataFrame:
        """Encoded values -> a table with the training table's columns, order and dtypes
        (``conditions``: the attribute columns of each row, typed). Each one-hot block is
        read by its largest value; with ``rng``, a category is drawn instead with
        probabilities proportional to the block's positive values (the comparison
        docs/tabular.md measures)."""
        out: dict[str, Any] = {}
        j = 0
        for s in self.columns:
            if s["type"] == "numeric":
                v = np.clip(from_normal(x[:, j], np.asarray(s["quantiles"])), s["min"], s["max"])
                if s["integer"]:
                    v = np.round(v)
                j += 1
                if s["missing"]:
                    v = np.where(x[:, j] > 0.5, np.nan, v)
                    j += 1
                out[s["name"]] = _numeric_column(v, s["dtype"])
            else:
                k = len(s["labels"])
                block = x[:, j: j + k]
                picked = np.argmax(block, axis=1) if rng is None else _draw(block, rng)
                j += k
                out[s["name"]] = _categorical_column(picked, s)
        for col in conditions.columns:  # as the training table held them (text stays text)
            values = conditions[col]
            if self.condition_dtypes.get(col) == "object":
                values = values.astype(object)
            out[col] = values.array if isinstance(values.dtype, pd.CategoricalDtype) else values.to_numpy()
        return pd.DataFrame({c: out[c] for c in self.order if c in out})

    def to_config(self) -> dict:
        return asdict(self)

    @classmethod
    def from_config(cls, config: dict) -> TableCodec:
        return cls(**config)

    def as_anndata(self, frame: pd.DataFrame, conditions) -> ad.AnnData:
        """The encoded table as the AnnData the model trains on (conditions in ``.obs``),
        marked so that its values are read as a table's."""
        obs = frame[[c for c in conditions]].copy()
        obs.index = pd.Index([str(i) for i in range(len(frame))])
        return ad.AnnData(X=self.encode(frame), obs=obs, var=pd.DataFrame(index=self.features),
                          uns={"scdiff_input": "tabular"})


def filled_numbers(col: pd.Series, spec: dict) -> tuple[np.ndarray, np.ndarray]:
    """A numeric column's values (missing ones at the training median) and where they were
    missing."""
    x = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64)
    gone = np.isnan(x)
    return np.where(gone, spec["median"], x), gone


def one_hot(col: pd.Series, spec: dict) -> np.ndarray:
    """A categorical column as its one-hot block (a value the training table never held:
    all zeros)."""
    labels = _labels(col).to_numpy()
    return (labels[:, None] == np.asarray(spec["labels"])[None, :]).astype(np.float64)


def _draw(block: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One category per row, drawn in proportion to the block's positive values (the
    largest where none is positive)."""
    p = np.clip(block, 0.0, None)
    total = p.sum(axis=1, keepdims=True)
    p = np.where(total > 0, p / np.where(total > 0, total, 1.0), np.eye(block.shape[1])[block.argmax(1)])
    return (rng.random(len(p))[:, None] > np.cumsum(p, axis=1)[:, :-1]).sum(axis=1)


def _labels(col: pd.Series) -> pd.Series:
    """A categorical column's values as text, a missing value as :data:`MISSING`."""
    text = col.astype(object).where(col.notna(), MISSING).astype(str)
    return text.reset_index(drop=True)


def _fit_column(name: str, col: pd.Series) -> dict:
    if col.isna().all():
        raise InputError(f"column {name!r} holds no values (every row is missing); drop it.")
    if pd.api.types.is_datetime64_any_dtype(col) or pd.api.types.is_timedelta64_dtype(col):
        raise InputError(f"column {name!r} holds dates or durations; turn it into a number (e.g. "
                         "days since a start date) or drop it.")
    if _is_number(col) and not isinstance(col.dtype, pd.CategoricalDtype):
        x = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64)
        seen = x[~np.isnan(x)]
        if not np.all(np.isfinite(seen)):
            raise InputError(f"column {name!r} holds infinite values; replace them or drop the rows.")
        n_q = min(N_QUANTILES, len(seen))
        quantiles = np.quantile(seen, np.linspace(0.0, 1.0, n_q))
        return {"name": name, "type": "numeric", "dtype": str(col.dtype),
                "integer": bool(np.all(np.mod(seen, 1) == 0)), "quantiles": quantiles.tolist(),
                "min": float(seen.min()), "max": float(seen.max()),
                "median": float(np.median(seen)), "missing": bool(np.isnan(x).any())}
    if _looks_like_dates(col):
        raise InputError(f"column {name!r} holds dates (e.g. {col.dropna().iloc[0]!r}); turn it into a "
                         "number (e.g. days since a start date) or drop it.")
    labels = _labels(col)
    n_levels = labels.nunique()
    if n_levels > MAX_LEVELS and n_levels > 0.5 * len(col):
        raise InputError(f"column {name!r} has {n_levels:,} distinct values in {len(col):,} rows: it "
                         "looks like an identifier or free text, not a category; drop it.")
    if isinstance(col.dtype, pd.CategoricalDtype):
        values = [_json(v) for v in col.cat.categories]
        ordered = bool(col.cat.ordered)
    else:
        values = sorted({_json(v) for v in col.dropna().unique()}, key=str)
        ordered = False
    text = [str(v) for v in values]
    has_missing = bool(col.isna().any())
    return {"name": name, "type": "categorical", "dtype": str(col.dtype),
            "labels": text + ([MISSING] if has_missing else []), "values": values,
            "ordered": ordered, "missing": has_missing}


_DATE = r"^\s*(\d{4}-\d{1,2}-\d{1,2}|\d{1,2}/\d{1,2}/\d{2,4})([ T]\d{1,2}:\d{2}(:\d{2})?\S*)?\s*$"


def _looks_like_dates(col: pd.Series) -> bool:
    """Whether a text column holds dates as a .csv does (2024-01-31, 31/01/2024, with a time)."""
    seen = col.dropna()
    if len(seen) == 0 or not (pd.api.types.is_object_dtype(seen) or pd.api.types.is_string_dtype(seen)):
        return False
    return bool(seen.astype(str).str.match(_DATE).mean() > 0.9)


def _numeric_column(v: np.ndarray, dtype: str):
    if np.isnan(v).any():  # a missing value: the float column, or pandas' nullable integers
        return pd.array(v, dtype="Int64") if dtype.startswith(("Int", "UInt")) else v
    try:
        return v.astype(pd.api.types.pandas_dtype(dtype))
    except TypeError:
        return v


def _categorical_column(picked: np.ndarray, s: dict):
    values = list(s["values"]) + ([None] if s["missing"] else [])
    chosen = [values[i] for i in picked]
    if s["dtype"] == "category":
        return pd.Categorical(chosen, categories=s["values"], ordered=s["ordered"])
    if s["dtype"] == "bool" and not any(v is None for v in chosen):
        return np.asarray(chosen, dtype=bool)
    if s["dtype"] in ("bool", "boolean"):
        return pd.array(chosen, dtype="boolean")
    return np.asarray(chosen, dtype=object)
