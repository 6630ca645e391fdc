"""Are generated cells copies of training cells?"""

from __future__ import annotations

import numpy as np
from sklearn.neighbors import NearestNeighbors

#: Real held-out cells closer to a training cell than this quantile count as "near copies".
COPY_QUANTILE = 0.01
#: Flag memorisation when this fraction of generated cells are near copies (expected: 0.01).
COPY_FLAG = 0.05


def nearest_distance(query: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Euclidean distance from each row of ``query`` to its nearest row of ``ref``."""
    nn = NearestNeighbors(n_neighbors=1, algorithm="brute").fit(ref)
    return nn.kneighbors(query, return_distance=True)[0][:, 0]


def memorisation(d_gen: np.ndarray, d_real: np.ndarray, threshold: float) -> dict[str, float]:
    """Summaries of nearest-training-cell distances of generated vs real held-out cells.

    Parameters
    ----------
    d_gen, d_real
        Distance from each generated / real held-out cell to its nearest training cell.
    threshold
        The ``COPY_QUANTILE`` quantile of all real held-out distances.

    Returns
    -------
    dict
        ``nn_distance_ratio``: median(d_gen) / median(d_real); well below 1
        means generated cells sit closer to training cells than new real cells
        do. ``copy_fraction``: fraction of generated cells with ``d_gen`` below
        ``threshold`` (about ``COPY_QUANTILE`` when nothing is copied).
    """
    med_real = float(np.median(d_real)) if len(d_real) else float("nan")
    ratio = float(np.median(d_gen)) / med_real if med_real > 0 else float("nan")
    return {"nn_distance_ratio": ratio, "copy_fraction": float(np.mean(d_gen <= threshold))}
