"""Distances between two samples of cells in a low-dimensional (PCA) space.

Kernel sums are computed block by block, so memory stays flat however many
cells are compared; the cost is quadratic, which is why evaluate caps groups.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import wasserstein_distance

#: Multiples of the median-heuristic bandwidth whose RBF kernels are summed.
MMD_SCALES = (0.5, 1.0, 2.0)
_BLOCK = 1024


def median_bandwidth(x: np.ndarray, *, max_cells: int = 1000, seed: int = 0) -> float:
    """Median pairwise Euclidean distance between the rows of ``x`` (the median heuristic).

    At most ``max_cells`` rows (drawn with ``seed``) are used; 1.0 when all rows coincide.

    Examples
    --------
    >>> import numpy as np
    >>> median_bandwidth(np.array([[0.0], [1.0], [3.0]]))
    2.0
    """
    x = np.asarray(x, dtype=np.float64)
    if len(x) > max_cells:
        x = x[np.random.default_rng(seed).choice(len(x), max_cells, replace=False)]
    d = torch.cdist(torch.from_numpy(x), torch.from_numpy(x))
    iu = torch.triu_indices(len(x), len(x), offset=1)
    vals = d[iu[0], iu[1]]
    med = float(vals.median()) if vals.numel() else 0.0
    return med if med > 0 else 1.0


def _block_means(x: np.ndarray, y: np.ndarray, sigmas: tuple[float, ...]) -> tuple[float, float]:
    """Mean over all pairs (i, j) of sum_s exp(-|x_i - y_j|^2 / 2 s^2) and of |x_i - y_j|."""
    xt = torch.from_numpy(np.asarray(x, dtype=np.float64))
    yt = torch.from_numpy(np.asarray(y, dtype=np.float64))
    yy = (yt * yt).sum(1)
    k_sum, d_sum = 0.0, 0.0
    for start in range(0, len(xt), _BLOCK):
        xb = xt[start : start + _BLOCK]
        d2 = ((xb * xb).sum(1)[:, None] + yy[None, :] - 2.0 * xb @ yt.T).clamp_min_(0.0)
        for s in sigmas:
            k_sum += float(torch.exp(d2 / (-2.0 * s * s)).sum())
        d_sum += float(d2.sqrt_().sum())
    n_pairs = len(xt) * len(yt)
    return k_sum / n_pairs, d_sum / n_pairs


class PairDistances:
    """MMD and energy distance of many samples against one reference sample.

    The reference's self-term is computed once and reused, which halves the
    cost of scoring generated cells and the real-vs-real floor against the
    same reference with the same kernel.

    Parameters
    ----------
    ref
        Reference cells (rows), e.g. real cells in PCA coordinates.
    sigma
        Base bandwidth of the RBF kernels; defaults to the median heuristic on ``ref``.
    """

    def __init__(self, ref: np.ndarray, sigma: float | None = None, *, seed: int = 0):
        self.ref = np.asarray(ref, dtype=np.float64)
        self.sigma = median_bandwidth(self.ref, seed=seed) if sigma is None else float(sigma)
        self.sigmas = tuple(s * self.sigma for s in MMD_SCALES)
        self._self = _block_means(self.ref, self.ref, self.sigmas)

    def __call__(self, other: np.ndarray) -> dict[str, float]:
        """``{"mmd": ..., "energy": ...}`` between the reference and ``other``."""
        k_oo, d_oo = _block_means(other, other, self.sigmas)
        k_ro, d_ro = _block_means(self.ref, other, self.sigmas)
        k_rr, d_rr = self._self
        return {"mmd": k_rr + k_oo - 2.0 * k_ro, "energy": 2.0 * d_ro - d_rr - d_oo}


def mmd_rbf(x: np.ndarray, y: np.ndarray, *, sigma: float | None = None) -> float:
    """Squared maximum mean discrepancy with a sum of RBF kernels (biased V-statistic).

    ``MMD^2 = mean k(x, x') + mean k(y, y') - 2 mean k(x, y)``, each mean over
    all pairs including i = j, with ``k(a, b) = sum_s exp(-|a - b|^2 / (2 (s sigma)^2))``
    for ``s`` in ``MMD_SCALES``. The biased form is never negative and is 0 for
    identical samples; its small positive bias shrinks as 1/n, so compare it
    only with a floor computed on samples of the same size.

    Parameters
    ----------
    x, y
        Samples, cells by dimensions.
    sigma
        Base bandwidth; defaults to the median pairwise distance within ``x``.

    Examples
    --------
    >>> import numpy as np
    >>> mmd_rbf(np.zeros((3, 2)), np.zeros((4, 2)))
    0.0
    """
    return PairDistances(x, sigma)(y)["mmd"]


def energy_distance(x: np.ndarray, y: np.ndarray) -> float:
    """Energy distance ``2 E|X - Y| - E|X - X'| - E|Y - Y'|`` (V-statistic, Euclidean).

    This is Székely's squared form (scipy's 1-D ``energy_distance`` is its
    square root). Means run over all pairs including i = j, so it is never
    negative and is 0 for identical samples.

    Examples
    --------
    >>> import numpy as np
    >>> energy_distance(np.array([[0.0], [1.0]]), np.array([[2.0]]))
    2.5
    """
    _, d_xx = _block_means(x, x, ())
    _, d_yy = _block_means(y, y, ())
    _, d_xy = _block_means(x, y, ())
    return 2.0 * d_xy - d_xx - d_yy


def wasserstein_pcs(x: np.ndarray, y: np.ndarray) -> float:
    """Mean over dimensions (PCs) of the 1-D Wasserstein-1 distance between ``x`` and ``y``.

    Parameters
    ----------
    x, y
        Two samples in the same coordinates (cells x PCs); the numbers of cells may differ.

    Examples
    --------
    >>> import numpy as np
    >>> wasserstein_pcs(np.array([[0.0, 0.0], [1.0, 1.0]]), np.array([[1.0, 0.0], [2.0, 1.0]]))
    0.5
    """
    x, y = np.asarray(x), np.asarray(y)
    return float(np.mean([wasserstein_distance(x[:, j], y[:, j]) for j in range(x.shape[1])]))
