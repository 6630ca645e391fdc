"""Classifiers that tell real from generated cells, or read a cell's condition."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def knn_auc(a: np.ndarray, b: np.ndarray, *, k: int = 5, folds: int = 5, seed: int = 0) -> float:
    """Cross-validated ROC AUC of a kNN classifier telling the rows of ``a`` from those of ``b``.

    Both samples are first subsampled to the smaller one's size (balanced
    classes), then each cell is scored by a kNN classifier fitted on the
    other folds of a stratified ``folds``-fold split. 0.5 means the two
    samples cannot be told apart; 1.0 means they are perfectly separable.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> round(knn_auc(rng.normal(size=(200, 2)), rng.normal(size=(200, 2)) + 10), 2)
    1.0
    """
    rng = np.random.default_rng(seed)
    n = min(len(a), len(b))
    if n < folds:
        return float("nan")
    a = a[np.sort(rng.choice(len(a), n, replace=False))]
    b = b[np.sort(rng.choice(len(b), n, replace=False))]
    x, y = np.vstack([a, b]), np.repeat([0, 1], n)
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    clf = KNeighborsClassifier(n_neighbors=min(k, 2 * n - 2 * n // folds))
    proba = cross_val_predict(clf, x, y, cv=cv, method="predict_proba")[:, 1]
    return float(roc_auc_score(y, proba))


def fit_label_classifier(z: np.ndarray, labels: np.ndarray, *, seed: int = 0):
    """A logistic regression on standardised PCs that predicts each cell's group."""
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=seed))
    return clf.fit(z, labels)


def label_accuracy(clf, z: np.ndarray, labels: np.ndarray, groups: list[str]) -> dict[str, float]:
    """Accuracy of ``clf`` on cells whose intended group is ``labels``: per group and overall."""
    pred = clf.predict(z)
    hit = pred == labels
    out = {g: float(hit[labels == g].mean()) for g in groups if (labels == g).any()}
    out["overall"] = float(hit.mean()) if len(hit) else float("nan")
    return out
