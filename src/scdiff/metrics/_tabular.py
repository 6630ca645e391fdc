"""Judging a synthetic table as table users do (SDMetrics' standards), beside the
real-vs-real floor.

- ``column_shapes``, ``pair_trends``: SDMetrics' quality report (KS or TV complement per
  column; correlation or contingency similarity per pair of columns), 1 = identical;
- ``detection_auc``: can a classifier tell synthetic rows from real ones? (logistic
  regression, SDMetrics' detector, on the columns encoded as the model encodes them; 0.5 =
  it cannot), cross-validated ROC AUC, not clipped at 0.5;
- ``ml_efficacy``: a random forest trained on the synthetic rows, scored on real held-out
  rows (balanced accuracy for a categorical target, R2 for a numeric one), against the
  same forest trained on the real training rows (``ml_efficacy`` of the floor);
- ``dcr``: the median distance of each row to its closest training row (numbers scaled to
  the training range, categories one-hot), and ``copy_fraction``: rows twice as close to a
  training row as to any held-out real row. The floor is the held-out real rows' own.

``sdmetrics`` is an optional extra (``pip install 'scdiff[tabular]'``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, r2_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from scdiff._errors import InputError, arg
from scdiff.data import TableCodec
from scdiff.data._table import filled_numbers, one_hot
from scdiff.metrics._memorisation import memorisation, nearest_distance

#: The metrics of :func:`evaluate_table`, in report order, and which way is better.
TABLE_METRICS = {"column_shapes": "higher", "pair_trends": "higher", "detection_auc": "0.5",
                 "ml_efficacy": "higher", "dcr": "higher", "copy_fraction": "lower"}


def _quality(real: pd.DataFrame, synthetic: pd.DataFrame) -> tuple[float, float]:
    """(column shapes, column pair trends) of SDMetrics' quality report."""
    try:
        from sdmetrics.reports import QualityReport
    except ImportError as err:
        raise InputError("scoring a table's column shapes and pair trends needs sdmetrics: "
                         "pip install 'scdiff[tabular]' (or pip install sdmetrics).") from err
    meta = {"columns": {}}
    for c in real.columns:
        col = real[c]
        numeric = pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col) \
            and not isinstance(col.dtype, pd.CategoricalDtype)
        meta["columns"][str(c)] = {"sdtype": "numerical" if numeric else "categorical"}
    real = real.rename(columns=str)
    synthetic = synthetic.rename(columns=str)
    for c, m in meta["columns"].items():  # categories compared as text: 1 and "1" are one label
        if m["sdtype"] == "categorical":
            real[c] = real[c].astype(object).where(real[c].notna(), None).astype(str)
            synthetic[c] = synthetic[c].astype(object).where(synthetic[c].notna(), None).astype(str)
    report = QualityReport()
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report.generate({"table": real}, {"table": synthetic}, {"tables": {"table": meta}},
                        verbose=False)
    props = report.get_properties().set_index("Property")["Score"]
    return float(props["Column Shapes"]), float(props["Column Pair Trends"])


def _distance_space(codec: TableCodec, train: pd.DataFrame):
    """A function mapping a table to the space distances are measured in: each number
    scaled by its training range (missing: an indicator), each category one-hot."""
    def scale(frame: pd.DataFrame) -> np.ndarray:
        blocks = []
        for s in codec.columns:
            col = frame[s["name"]]
            if s["type"] == "numeric":
                x, gone = filled_numbers(col, s)
                blocks.append((x - s["min"])[:, None] / max(s["max"] - s["min"], 1e-12))
                if s["missing"]:
                    blocks.append(gone[:, None].astype(np.float64))
            else:
                blocks.append(one_hot(col, s))
        return np.hstack(blocks)
    return scale


#: A numeric target with at most this many distinct whole values is a class label.
MAX_CLASSES = 20


def is_class_column(col: pd.Series) -> bool:
    """Whether ``ml_efficacy`` classifies this target (text, categories, booleans, or at most
    :data:`MAX_CLASSES` whole numbers) rather than regressing it.

    Examples
    --------
    >>> is_class_column(pd.Series([0, 1, 2, 1])), is_class_column(pd.Series([0.5, 1.7, 2.2]))
    (True, False)
    """
    if not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col) \
            or isinstance(col.dtype, pd.CategoricalDtype):
        return True
    seen = col.dropna().to_numpy(dtype=float)
    return bool(np.all(np.mod(seen, 1) == 0)) and len(np.unique(seen)) <= MAX_CLASSES


def _detection_auc(real_x: np.ndarray, fake_x: np.ndarray, seed: int) -> float:
    x = np.vstack([real_x, fake_x])
    y = np.r_[np.zeros(len(real_x)), np.ones(len(fake_x))]
    folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=seed)
    clf = LogisticRegression(max_iter=2000)
    p = cross_val_predict(clf, x, y, cv=folds, method="predict_proba")[:, 1]
    return float(roc_auc_score(y, p))


def _efficacy(fit_on: pd.DataFrame, test: pd.DataFrame, target: str, codec: TableCodec,
              categorical: bool, seed: int) -> float:
    x_fit, x_test = codec.encode(fit_on), codec.encode(test)
    y_fit, y_test = fit_on[target], test[target]
    if categorical:
        y_fit, y_test = y_fit.astype(str).to_numpy(), y_test.astype(str).to_numpy()
        model = RandomForestClassifier(n_estimators=200, random_state=seed, n_jobs=1)
        return float(balanced_accuracy_score(y_test, model.fit(x_fit, y_fit).predict(x_test)))
    keep_fit, keep_test = y_fit.notna().to_numpy(), y_test.notna().to_numpy()
    model = RandomForestRegressor(n_estimators=200, random_state=seed, n_jobs=1)
    model.fit(x_fit[keep_fit], y_fit.to_numpy(dtype=float)[keep_fit])
    return float(r2_score(y_test.to_numpy(dtype=float)[keep_test], model.predict(x_test[keep_test])))


def evaluate_table(real: pd.DataFrame, generated: pd.DataFrame, *, train: pd.DataFrame,
                   target: str | None = None, seed: int = 0) -> pd.DataFrame:
    """Score a synthetic table against real held-out rows, beside the real-vs-real floor.

    Parameters
    ----------
    real
        Real rows the generator never saw (the held-out table).
    generated
        The generated rows, in the same columns.
    train
        The real rows the generator was trained on: the floor (scored as if it were the
        generated table), the reference of the closest-record distance, and the rows the
        real-data model of ``ml_efficacy`` is trained on.
    target
        The column ``ml_efficacy`` predicts from the others (a class label, see
        :func:`is_class_column`: balanced accuracy; else R2); default: the last class-label
        column, else the last column.

    Returns
    -------
    DataFrame
        One row per metric (:data:`TABLE_METRICS`), columns ``generated`` and ``floor``.

    Examples
    --------
    >>> scdiff.evaluate_table(test, generated, train=train, target="label")  # doctest: +SKIP
    """
    for name, frame in (("real", real), ("generated", generated), ("train", train)):
        if not isinstance(frame, pd.DataFrame):
            raise InputError(f"{arg(name)} needs to be a pandas DataFrame (a table), got "
                             f"{type(frame).__name__}.")
        if len(frame) < 6:
            raise InputError(f"{arg(name)} holds {len(frame)} rows; scoring a table needs at least 6.")
    columns = list(real.columns)
    for name, frame in (("generated", generated), ("train", train)):
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise InputError(f"{arg(name)} lacks the column(s) {missing} of {arg('real')}.")
    generated, train = generated[columns], train[columns]
    if target is None:
        classes = [c for c in columns if is_class_column(train[c])]
        target = (classes or columns)[-1]
    if target not in columns:
        raise InputError(f"{arg('target', target)} is not a column of the table; its columns are: "
                         f"{', '.join(map(str, columns))}.")
    codec = TableCodec.fit(train)
    features = TableCodec.fit(train, [target])
    categorical = is_class_column(train[target])
    scale = _distance_space(codec, train)
    x_train, x_real = scale(train), scale(real)
    # copies are judged against as many training rows as there are held-out ones
    sub = x_train[np.random.default_rng(seed).permutation(len(x_train))[: len(x_real)]]
    out = {}
    for who, frame in (("generated", generated), ("floor", train)):
        shapes, pairs = _quality(real, frame)
        if who == "generated":
            x_fake = scale(frame)
            dcr = nearest_distance(x_fake, x_train)
            copies = memorisation(nearest_distance(x_fake, sub), nearest_distance(x_fake, x_real))
        else:  # the held-out real rows' own: to the training rows, and to each other
            dcr = nearest_distance(x_real, x_train)
            copies = memorisation(nearest_distance(x_real, sub), _nearest_other(x_real))
        out[who] = {
            "column_shapes": shapes, "pair_trends": pairs,
            "detection_auc": _detection_auc(codec.encode(real), codec.encode(frame), seed),
            "ml_efficacy": _efficacy(frame, real, target, features, categorical, seed),
            "dcr": float(np.median(dcr)), "copy_fraction": copies["copy_fraction"],
        }
    table = pd.DataFrame(out).loc[list(TABLE_METRICS)]
    table.attrs["target"] = target
    return table


def _nearest_other(x: np.ndarray) -> np.ndarray:
    """Each row's distance to its nearest other row of ``x``."""
    from sklearn.neighbors import NearestNeighbors

    return NearestNeighbors(n_neighbors=2).fit(x).kneighbors(x)[0][:, 1]
