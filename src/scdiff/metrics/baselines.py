"""Simple generators to benchmark against: any real model should beat them.

- :func:`gaussian_pca`: a Gaussian per condition in PCA space (what a linear
  model can do).
- :func:`resample`: training cells drawn again (perfect fidelity, zero
  novelty: memorisation checks should flag it).

Both return cells shaped like ``like``: one generated cell per row of
``like``, with its condition values.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from scdiff._errors import InputError
from scdiff.data import condition_keys, group_labels, select_rows, subsample
from scdiff.metrics._pca import fit_pca

__all__ = ["gaussian_pca", "resample"]

#: Training cells used to fit the PCA of :func:`gaussian_pca`.
_PCA_MAX_CELLS = 50000


def _groups(train: AnnData, like: AnnData, condition) -> tuple[list[str], np.ndarray, np.ndarray]:
    keys = condition_keys(condition)
    if not keys:
        raise InputError("baselines need condition: the obs column(s) whose values like asks for")
    lab_train = group_labels(train, keys, "train")
    lab_like = group_labels(like, keys, "like")
    missing = sorted(set(lab_like.tolist()) - set(lab_train.tolist()))
    if missing:
        raise InputError(f"like asks for conditions absent from train: {', '.join(missing)}; "
                         f"drop those cells from like or train on data that has them")
    return keys, lab_train, lab_like


def _output(X, train: AnnData, like: AnnData, keys: list[str], name: str, params: dict
            ) -> AnnData:
    """An AnnData with ``like``'s condition columns (same categories) and train's genes."""
    obs = pd.DataFrame(index=pd.Index([f"{name}_{i}" for i in range(like.n_obs)]))
    for k in keys:
        col = like.obs[k]
        obs[k] = col.to_numpy() if not isinstance(col.dtype, pd.CategoricalDtype) else \
            pd.Categorical(col.to_numpy(), categories=col.cat.categories)
    out = AnnData(X=X, obs=obs, var=pd.DataFrame(index=train.var_names.copy()))
    out.uns["scdiff"] = {"baseline": name, **params}
    return out


def gaussian_pca(train: AnnData, like: AnnData, *, condition: str | Sequence[str],
                 n_pcs: int = 50, seed: int = 0) -> AnnData:
    """Sample each condition from a full-covariance Gaussian fitted in PCA space.

    A PCA (centred, unscaled) is fitted on ``train``; for each condition the
    mean and covariance of its training cells' PC scores define a Gaussian;
    samples are decoded back to genes and clipped at 0.

    Parameters
    ----------
    train
        Training cells, log-normalized expression in ``.X``.
    like
        Cells whose ``.obs`` says how many cells of each condition to generate
        (its expression is not used).
    condition
        ``.obs`` column(s) naming the condition, present in both.
    n_pcs
        Principal components of the Gaussian.
    seed
        Seeds the PCA and the sampling.

    Returns
    -------
    AnnData
        ``like.n_obs`` cells, dense float32 ``.X``, ``train``'s ``var_names``,
        ``like``'s condition columns with the same categories.

    Examples
    --------
    >>> import anndata as ad, numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> train = ad.AnnData(np.log1p(rng.poisson(2.0, (60, 20))).astype("float32"))
    >>> train.obs["cell_type"] = pd.Categorical(np.repeat(["A", "B"], 30))
    >>> gaussian_pca(train, train[:10], condition="cell_type", n_pcs=5).shape
    (10, 20)
    """
    keys, lab_train, lab_like = _groups(train, like, condition)
    rng = np.random.default_rng(seed)
    fit_rows = subsample(np.arange(train.n_obs), _PCA_MAX_CELLS, rng)
    pca = fit_pca(select_rows(train.X, fit_rows), n_pcs=n_pcs, seed=seed)
    z_train = pca.transform(select_rows(train.X, np.arange(train.n_obs)))
    z = np.zeros((like.n_obs, pca.n_pcs))
    for g in sorted(set(lab_like.tolist())):
        zg = z_train[lab_train == g]
        cov = np.cov(zg, rowvar=False) if len(zg) > 1 else np.zeros((pca.n_pcs, pca.n_pcs))
        cov = np.atleast_2d(cov) + 1e-8 * np.eye(pca.n_pcs)
        dest = np.flatnonzero(lab_like == g)
        z[dest] = rng.multivariate_normal(zg.mean(axis=0), cov, size=len(dest), method="eigh")
    X = np.clip(z @ pca.components + pca.mean, 0.0, None).astype(np.float32)
    return _output(X, train, like, keys, "gaussian_pca", {"n_pcs": pca.n_pcs, "seed": seed})


def resample(train: AnnData, like: AnnData, *, condition: str | Sequence[str], seed: int = 0
             ) -> AnnData:
    """Draw training cells of each condition with replacement, as many as ``like`` has.

    Parameters
    ----------
    train
        Training cells.
    like
        Cells whose ``.obs`` gives the condition of each cell to draw.
    condition
        ``.obs`` column(s) naming the condition, present in both.
    seed
        Seeds the draw.

    Returns
    -------
    AnnData
        ``like.n_obs`` training cells (``.X`` stays sparse if it was), with
        ``like``'s condition columns and ``uns["scdiff"]["train_index"]``.

    Examples
    --------
    >>> import anndata as ad, numpy as np, pandas as pd
    >>> train = ad.AnnData(np.ones((4, 3), dtype="float32"))
    >>> train.obs["cell_type"] = pd.Categorical(["A", "A", "B", "B"])
    >>> resample(train, train, condition="cell_type").obs["cell_type"].tolist()
    ['A', 'A', 'B', 'B']
    """
    keys, lab_train, lab_like = _groups(train, like, condition)
    rng = np.random.default_rng(seed)
    src = np.zeros(like.n_obs, dtype=int)
    for g in sorted(set(lab_like.tolist())):
        dest = np.flatnonzero(lab_like == g)
        src[dest] = rng.choice(np.flatnonzero(lab_train == g), size=len(dest), replace=True)
    X = train.X[src]
    X = sp.csr_matrix(X) if sp.issparse(X) else np.array(X)
    return _output(X, train, like, keys, "resample", {"seed": seed, "train_index": src})
