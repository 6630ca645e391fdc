"""Condition encoding: categorical obs columns to codes, continuous ones to doses.

Each categorical attribute gets codes 0..K-1 plus the null code K that classifier-
free guidance trains and samples with. Each dose is mapped to about [0, 1] by
``log1p(dose) / log1p(max training dose)``, so doses spanning orders of
magnitude are spread evenly and doses beyond the range stay finite.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from scdiff._errors import InputError, ScdiffWarning, arg
from scdiff.data._doses import dose_label, gives_set_doses, numeric_dose, training_doses
from scdiff.data._sets import members, reads_as_sets, set_codes, set_doses


def _as_list(keys: str | Sequence[str] | None) -> list[str]:
    if keys is None:
        return []
    if isinstance(keys, str):
        return [keys]
    return [str(k) for k in keys]


def _check_columns(obs: pd.DataFrame, keys: Sequence[str], kind: str) -> None:
    for key in keys:
        if key not in obs.columns:
            cols = ", ".join(map(str, obs.columns)) or "none"
            raise InputError(
                f"{kind} column {key!r} not found in adata.obs; the columns there are: {cols}."
            )


def _check_categories(key: str, col: pd.Series) -> None:
    """A condition needs two categories at least, each with two cells at least."""
    sizes = col.value_counts()
    if len(sizes) < 2:
        raise InputError(
            f"condition column {key!r} has a single category ({sizes.index[0]!r}): there is "
            f"nothing to condition on; drop it from {arg('condition')}."
        )
    lonely = sizes[sizes < 2]
    if len(lonely):
        raise InputError(
            f"condition column {key!r} has categories with a single cell "
            f"({', '.join(map(repr, lonely.index[:5]))}); "
            "a model cannot learn a condition from one cell: remove those cells or merge the categories."
        )


def _plain(value):
    """A JSON-able Python value (numpy scalars unwrapped; anything else as its label)."""
    value = value.item() if isinstance(value, np.generic) else value
    return value if isinstance(value, bool | int | float | str) else str(value)


def _column_type(col: pd.Series, cats: list[str]) -> dict:
    """How a condition column is typed: categorical or not, its dtype, each category's value."""
    categorical = isinstance(col.dtype, pd.CategoricalDtype)
    raw = col.cat.categories if categorical else pd.Index(col.unique())
    by_label = {str(v): _plain(v) for v in raw}
    dtype = col.cat.categories.dtype if categorical else col.dtype
    plain = dtype.kind in "iub"  # ints and booleans come back as such; strings as categories
    return {"categorical": categorical, "ordered": bool(categorical and col.cat.ordered),
            "dtype": str(dtype) if plain else "object", "values": [by_label[c] for c in cats]}


@dataclass
class ConditionEncoder:
    """Maps obs columns to the network's (codes, doses) and back.

    Attributes
    ----------
    keys
        Categorical obs columns.
    categories
        For each key, its categories in code order.
    dose_keys
        Continuous obs columns.
    dose_max
        For each dose key, the largest training dose (used by the transform).
    dose_values
        For each dose key, the distinct training doses (at most 100, for messages).
    counts
        Number of training cells of each observed combination, for sampling in
        training proportions: list of [values..., doses..., n].
    column_types
        For each key, how its column was typed in training (categorical or not, ordered,
        and each category's value as it was: an int, a bool, a string), so that output
        columns come back with the same dtype (empty for runs saved before it).
    slots
        For each key, the largest set of its categories one cell holds (``drugA+drugB``:
        2; :mod:`scdiff.data._sets`); 1 for a plain attribute (empty for older runs).
    dose_pairs
        For each dose key, the index of the key it is the dose of, or -1 (a dose of a set
        attribute has one dose per member).
    dose_text
        For each dose key, whether its training column was text (``"10+100"``), so that
        output comes back as text.
    unseen
        For each key, the categories that no training cell has: known from a feature
        table (``condition_features``), generated from their features.
    """

    keys: list[str] = field(default_factory=list)
    categories: list[list[str]] = field(default_factory=list)
    dose_keys: list[str] = field(default_factory=list)
    dose_max: list[float] = field(default_factory=list)
    dose_values: list[list[float]] = field(default_factory=list)
    counts: list[list] = field(default_factory=list)
    dose_min: list[float] = field(default_factory=list)
    column_types: list[dict] = field(default_factory=list)
    slots: list[int] = field(default_factory=list)
    dose_pairs: list[int] = field(default_factory=list)
    dose_text: list[bool] = field(default_factory=list)
    unseen: list[list[str]] = field(default_factory=list)

    # -- fitting ------------------------------------------------------------------------------
    @classmethod
    def fit(
        cls, obs: pd.DataFrame, condition: str | Sequence[str] | None, dose: str | Sequence[str] | None
    ) -> ConditionEncoder:
        """Read the categories and dose ranges from training ``obs``."""
        keys, dose_keys = _as_list(condition), _as_list(dose)
        both = set(keys) & set(dose_keys)
        if both:
            raise InputError(f"{sorted(both)} given both as condition and as dose; choose one.")
        _check_columns(obs, keys, "condition")
        _check_columns(obs, dose_keys, "dose")
        categories, column_types, slots = [], [], []
        set_doses = [obs[k].astype(str).to_numpy() for k in dose_keys if gives_set_doses(obs, k)]
        for key in keys:
            col = obs[key]
            if col.isna().any():
                raise InputError(
                    f"condition column {key!r} has {int(col.isna().sum())} missing values; "
                    "fill them (e.g. 'unknown') or drop those cells."
                )
            present = col.astype(str).unique()
            if reads_as_sets(col.astype(str).to_numpy(), set_doses):  # members are the categories
                parts = [members(v) for v in present]
                cats = sorted({m for p in parts for m in p})
                slots.append(max(len(p) for p in parts))
                column_types.append({"categorical": False, "ordered": False, "dtype": "object",
                                     "values": cats, "sets": True})
            else:
                if isinstance(col.dtype, pd.CategoricalDtype):
                    cats = [str(c) for c in col.cat.categories if str(c) in set(present)]
                else:
                    cats = sorted(present)
                slots.append(1)
                column_types.append(_column_type(col, cats))
            _check_categories(key, col.astype(str))
            categories.append(cats)
        dose_max, dose_values, dose_min, dose_text = [], [], [], []
        for key in dose_keys:
            arr, text = training_doses(obs, key)
            dose_max.append(float(arr.max()) if arr.size else 0.0)
            dose_min.append(float(arr.min()) if arr.size else 0.0)
            dose_values.append(sorted(np.unique(arr).tolist())[:100])
            dose_text.append(text)
        enc = cls(keys, categories, dose_keys, dose_max, dose_values, dose_min=dose_min,
                  column_types=column_types, slots=slots, dose_text=dose_text,
                  unseen=[[] for _ in keys])
        if keys or dose_keys:
            frame = pd.DataFrame({k: obs[k].astype(str).to_numpy() for k in keys})
            for k, text in zip(dose_keys, dose_text, strict=True):
                frame[k] = (obs[k].astype(str).str.strip().to_numpy() if text
                            else numeric_dose(obs, k, allow_negative=True))
            grouped = frame.groupby(keys + dose_keys, sort=True, observed=True).size()
            enc.counts = [
                [*(idx if isinstance(idx, tuple) else (idx,)), int(n)] for idx, n in grouped.items()
            ]
        return enc

    def to_config(self) -> dict:
        return asdict(self)

    @classmethod
    def from_config(cls, config: dict) -> ConditionEncoder:
        return cls(**config)

    # -- properties ---------------------------------------------------------------------------
    @property
    def attributes(self) -> tuple[str, ...]:
        return tuple(self.keys) + tuple(self.dose_keys)

    @property
    def n_categories(self) -> list[int]:
        return [len(c) for c in self.categories]

    # -- encoding -----------------------------------------------------------------------------
    def transform_dose(self, key_index: int, values: np.ndarray) -> np.ndarray:
        """Dose -> network input: log1p(d) / log1p(max training dose).

        A continuous covariate with negative training values (a score, say) is not a
        dose: it is min-max scaled to [0, 1] over its training range instead.
        """
        lo = self.dose_min[key_index] if key_index < len(self.dose_min) else 0.0
        if lo < 0:
            span = (self.dose_max[key_index] - lo) or 1.0
            return ((np.asarray(values, dtype=np.float64) - lo) / span).astype(np.float32)
        denom = np.log1p(self.dose_max[key_index]) or 1.0
        return (np.log1p(np.asarray(values, dtype=np.float64)) / denom).astype(np.float32)

    def encode(self, obs: pd.DataFrame, *, where: str = "adata.obs") -> tuple[np.ndarray, np.ndarray]:
        """obs columns -> (codes int64 [n, K], transformed doses float32 [n, D])."""
        _check_columns(obs, self.keys, "condition")
        _check_columns(obs, self.dose_keys, "dose")
        slots = self.key_slots
        codes = np.empty((len(obs), sum(slots)), dtype=np.int64)
        row_members: dict[int, np.ndarray] = {}  # each row's number of members
        for i, key in enumerate(self.keys):
            col, start = obs[key].astype(str), sum(slots[:i])
            if slots[i] > 1:
                lookup = {c: j for j, c in enumerate(self.categories[i])}
                codes[:, start:start + slots[i]], row_members[i] = set_codes(
                    col.to_numpy(), lookup, slots[i], len(lookup), key=key, where=where,
                    valid=", ".join(self.categories[i]))
                continue
            idx = pd.Index(self.categories[i]).get_indexer(col)
            if (idx < 0).any():
                unknown = sorted(set(col[idx < 0]))
                hint = (" (a set of several: this model was trained on one at a time)"
                        if any("+" in u for u in unknown) else "")
                raise InputError(
                    f"{key}={unknown[0]!r} in {where} was not seen in training{hint}; "
                    f"valid values of {key!r} are: {', '.join(self.categories[i])}."
                )
            codes[:, start] = idx
        columns = []
        for i, key in enumerate(self.dose_keys):
            negative_ok = i < len(self.dose_min) and self.dose_min[i] < 0
            pair = self.dose_pairs[i] if i < len(self.dose_pairs) else -1
            if pair in row_members:
                raw = set_doses(obs[key].to_numpy(), row_members[pair], slots[pair], key=key)
                if (raw[np.isfinite(raw)] < 0).any() and not negative_ok:
                    raise InputError(f"dose column {key!r} has negative values, which its training "
                                     "data did not have; doses must be >= 0.")
            else:
                raw = numeric_dose(obs, key, allow_negative=negative_ok)[:, None]
            self.warn_out_of_range(i, raw[np.isfinite(raw)])
            columns.append(self.transform_dose(i, raw))
        doses = (np.concatenate(columns, axis=1) if columns
                 else np.empty((len(obs), 0))).astype(np.float32)
        return codes, doses

    @property
    def key_slots(self) -> list[int]:
        """Each key's number of code columns (its largest set; 1 for runs before sets)."""
        return list(self.slots) or [1] * len(self.keys)

    def warn_unseen_combinations(self, frame: pd.DataFrame, *, hint: str = "") -> None:
        """Warn once per call when categorical combinations absent from training are asked for.

        The network adds one embedding per attribute, so it can generate them; how well
        depends on the attributes acting roughly independently, hence the warning.
        ``hint`` is appended to it (what the caller can do better).
        """
        if len(self.keys) < 2 or not self.counts:
            return
        seen = {tuple(map(str, row[: len(self.keys)])) for row in self.counts}
        asked = frame[self.keys].astype(str).drop_duplicates().itertuples(index=False, name=None)
        unseen = [c for c in asked if tuple(c) not in seen]
        if unseen:
            shown = "; ".join(", ".join(f"{k}={v}" for k, v in zip(self.keys, c, strict=True))
                              for c in unseen[:3])
            warnings.warn(ScdiffWarning(f"{len(unseen)} combination(s) never seen in training "
                                        f"({shown}): generated from the attributes' separately "
                                        f"learned effects.{hint}"), stacklevel=4)

    def warn_unmeasured(self, frame: pd.DataFrame) -> None:
        """Warn once per call when categories no training cell had (known from features) are asked."""
        for key, unseen, slots in zip(self.keys, self.unseen, self.key_slots, strict=False):
            if not unseen:
                continue
            values = frame[key].astype(str).unique()
            asked = {m for v in values for m in (members(v) if slots > 1 else [v])} & set(unseen)
            if asked:
                shown = ", ".join(sorted(asked)[:3])
                warnings.warn(ScdiffWarning(f"{key} {shown} never measured: generated from "
                                            f"{'its' if len(asked) == 1 else 'their'} features."),
                              stacklevel=4)

    def warn_out_of_range(self, key_index: int, raw: np.ndarray) -> None:
        hi = self.dose_max[key_index]
        lo = self.dose_values[key_index][0] if self.dose_values[key_index] else 0.0
        if raw.size and (raw.max() > hi or raw.min() < lo):
            worst = raw.max() if raw.max() > hi else raw.min()
            warnings.warn(
                f"dose {self.dose_keys[key_index]!r} asked at {worst:g}, outside the "
                f"training range [{lo:g}, {hi:g}]: the model extrapolates there.",
                stacklevel=3,
            )

    def training_obs(self, n_cells: int, rng: np.random.Generator) -> pd.DataFrame:
        """``n_cells`` rows of conditions drawn in training proportions (exact, rounded)."""
        if not self.counts:
            return pd.DataFrame(index=pd.RangeIndex(n_cells))
        weights = np.array([row[-1] for row in self.counts], dtype=np.float64)
        exact = weights / weights.sum() * n_cells
        alloc = np.floor(exact).astype(int)
        short = n_cells - alloc.sum()
        if short:
            alloc[np.argsort(-(exact - alloc), kind="stable")[:short]] += 1
        combos = pd.DataFrame([row[:-1] for row in self.counts],
                              columns=list(self.keys) + list(self.dose_keys))
        frame = combos.iloc[np.repeat(np.arange(len(combos)), alloc)].reset_index(drop=True)
        return frame.iloc[rng.permutation(len(frame))].reset_index(drop=True)

    def request_obs(
        self,
        n_cells: int,
        condition: Mapping[str, str] | None,
        dose: Mapping[str, float] | None,
        rng: np.random.Generator,
    ) -> pd.DataFrame:
        """obs for ``n_cells`` cells: the named values fixed, the rest in training proportions."""
        condition, dose = dict(condition or {}), dict(dose or {})
        for key in condition:
            if key not in self.keys:
                raise InputError(
                    f"condition {key!r} is not one the model was trained on; "
                    f"its conditions are: {', '.join(self.keys) or 'none'}."
                )
        for key in dose:
            if key not in self.dose_keys:
                raise InputError(
                    f"dose {key!r} is not one the model was trained on; "
                    f"its doses are: {', '.join(self.dose_keys) or 'none'}."
                )
        frame = self.training_obs(n_cells, rng)
        if condition or dose:
            free = [k for k in self.attributes if k not in condition and k not in dose]
            if free and self.counts:
                # the free attributes follow training proportions among cells matching the fixed ones
                base = pd.DataFrame(
                    [row[:-1] for row in self.counts], columns=list(self.attributes)
                ).assign(_n=[row[-1] for row in self.counts])
                match = np.ones(len(base), dtype=bool)
                for k, v in condition.items():
                    match &= base[k].astype(str).to_numpy() == str(v)
                pool = base[match] if match.any() else base
                probs = pool["_n"].to_numpy(dtype=float)
                pick = rng.choice(len(pool), size=n_cells, p=probs / probs.sum())
                frame = pool.iloc[pick][free].reset_index(drop=True)
            else:
                frame = pd.DataFrame(index=pd.RangeIndex(n_cells))
            for k, v in condition.items():
                frame[k] = str(v)
            for k, v in dose.items():
                frame[k] = v.strip() if isinstance(v, str) else float(v)  # text: a set's doses
            frame = frame[list(self.attributes)]
        return frame

    def to_obs(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Typed obs for output: each condition column as it was in training (a categorical
        with the same categories, or integers, booleans, strings), float doses."""
        out = pd.DataFrame(index=frame.index)
        for i, (key, cats) in enumerate(zip(self.keys, self.categories, strict=True)):
            labels = frame[key].astype(str)
            kind = self.column_types[i] if i < len(self.column_types) else None
            if kind is None:  # a run saved before column types were recorded
                out[key] = pd.Categorical(labels, categories=cats)
                continue
            if kind.get("sets"):  # sets of members: the labels are as asked
                out[key] = pd.Categorical(labels)
                continue
            typed = dict(zip(cats, kind["values"], strict=True))
            values = labels.map(typed)
            if kind["categorical"]:
                out[key] = pd.Categorical(values, categories=kind["values"], ordered=kind["ordered"])
            elif kind["dtype"] == "object":
                out[key] = pd.Categorical(values, categories=kind["values"])
            else:
                out[key] = values.to_numpy().astype(kind["dtype"])
        for i, key in enumerate(self.dose_keys):
            text = i < len(self.dose_text) and self.dose_text[i]
            out[key] = (frame[key].map(dose_label).to_numpy(dtype=object) if text
                        else frame[key].astype(np.float64).to_numpy())
        return out

    def add_categories(self, key: str, names: Sequence[str]) -> None:
        """Known categories no training cell has (from a feature table): they get codes after
        the training ones and are listed in ``unseen``."""
        i = self.keys.index(key)
        new = [str(n) for n in names if str(n) not in self.categories[i]]
        self.categories[i] = [*self.categories[i], *new]
        if i < len(self.column_types) and not self.column_types[i].get("sets"):
            kind = self.column_types[i]
            kind["values"] = [*kind["values"], *(new if kind["dtype"] == "object" else
                                                  pd.Series(new).astype(kind["dtype"]).tolist())]
        self.unseen = self.unseen or [[] for _ in self.keys]
        self.unseen[i] = [*self.unseen[i], *new]
