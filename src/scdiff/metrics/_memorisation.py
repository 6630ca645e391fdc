"""Are generated cells copies of training cells?"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import NearestNeighbors

#: A cell counts as a near copy when its nearest training cell is this many times closer
#: than its nearest held-out real cell (both reference sets of the same size).
COPY_RATIO = 0.5
#: Flag memorisation when the generated near-copy fraction exceeds the real cells' by this much.
COPY_FLAG_MARGIN = 0.05


def nearest_distance(query: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Euclidean distance from each row of ``query`` to its nearest row of ``ref``."""
    nn = NearestNeighbors(n_neighbors=1, algorithm="brute").fit(ref)
    return nn.kneighbors(query, return_distance=True)[0][:, 0]


def memorisation(d_train: np.ndarray, d_heldout: np.ndarray) -> dict[str, float]:
    """Do cells sit closer to training cells than to equally many held-out real cells?

    Comparing with held-out real cells (not with an absolute distance) separates
    copying from smoothing: a generator that denoises cells sits closer to every
    real cell, training or not; one that copies sits closer to the training cells only.

    Parameters
    ----------
    d_train, d_heldout
        For each cell, the distance to its nearest training cell and to its nearest
        held-out real cell.

    Returns
    -------
    dict
        ``nn_distance_ratio``: median(d_train) / median(d_heldout), near 0 for copies
        (compare with the same for real held-out cells). ``copy_fraction``: fraction
        of cells with ``d_train < COPY_RATIO * d_heldout``.
    """
    med = float(np.median(d_heldout)) if len(d_heldout) else float("nan")
    ratio = float(np.median(d_train)) / med if med > 0 else float("nan")
    frac = float(np.mean(d_train < COPY_RATIO * d_heldout)) if len(d_train) else float("nan")
    return {"nn_distance_ratio": ratio, "copy_fraction": frac}


def membership_auc(d_members: np.ndarray, d_others: np.ndarray) -> float:
    """A distance attack's ROC AUC: can training cells (``d_members``, each one's distance
    to its nearest generated cell) be told from held-out real cells (``d_others``) by being
    closer? 0.5 when they cannot; 1 when every training cell is nearer than every held-out one.

    Examples
    --------
    >>> membership_auc(np.array([0.1, 0.2]), np.array([1.0, 2.0]))
    1.0
    """
    if len(d_members) == 0 or len(d_others) == 0:
        return float("nan")
    labels = np.r_[np.ones(len(d_members)), np.zeros(len(d_others))]
    return float(roc_auc_score(labels, -np.r_[d_members, d_others]))
