"""A PCA fitted on real cells that projects any cells, dense or sparse, without densifying."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator, svds

#: Up to this many genes the PCA is an exact eigendecomposition of the covariance.
EXACT_MAX_GENES = 3000


@dataclass(frozen=True)
class PCA:
    """Principal axes of real cells: ``transform(X) = (X - mean) @ components.T``.

    The PCA is centred on the real cells' gene means and not scaled: scaling
    would give genes at noise level the same weight as marker genes.
    """

    mean: np.ndarray  # (n_genes,)
    components: np.ndarray  # (n_pcs, n_genes), unit rows
    explained_variance: np.ndarray  # (n_pcs,)

    @property
    def n_pcs(self) -> int:
        return self.components.shape[0]

    def transform(self, X) -> np.ndarray:
        """Project cells (rows of a dense or sparse matrix) onto the principal axes."""
        proj = X @ self.components.T
        proj = np.asarray(proj.todense() if sp.issparse(proj) else proj, dtype=np.float64)
        return proj - self.mean @ self.components.T


def fit_pca(x, *, n_pcs: int, seed: int = 0, method: str = "auto") -> PCA:
    """Fit a centred PCA on the rows of ``X`` (dense or sparse).

    Parameters
    ----------
    x
        Cells by genes.
    n_pcs
        Number of components; clipped to ``min(n_cells, n_genes) - 1``.
    seed
        Seeds the iterative solver's start vector.
    method
        ``"exact"`` eigendecomposes the gene covariance, ``"arpack"`` runs a
        truncated SVD with implicit centring; ``"auto"`` picks exact up to
        ``EXACT_MAX_GENES`` genes.

    Examples
    --------
    >>> x = np.random.default_rng(0).normal(size=(50, 8))
    >>> fit_pca(x, n_pcs=3).transform(x).shape
    (50, 3)
    """
    X = x
    if sp.issparse(X):  # scipy sums float32 sparse in float32; a sparse copy costs its nnz
        X = sp.csr_matrix(X, dtype=np.float64)
    n, g = X.shape
    k = max(1, min(n_pcs, min(n, g) - 1))
    mean = np.asarray(X.mean(axis=0, dtype=np.float64)).ravel()
    if method == "auto":
        method = "exact" if g <= EXACT_MAX_GENES else "arpack"
    if method == "exact":
        X = X.astype(np.float64) if sp.issparse(X) else np.asarray(X, dtype=np.float64)
        gram = X.T @ X
        gram = gram.toarray() if sp.issparse(gram) else np.asarray(gram)
        cov = (gram - n * np.outer(mean, mean)) / max(n - 1, 1)
        evals, evecs = np.linalg.eigh(cov)
        order = np.argsort(evals)[::-1][:k]
        comps, var = evecs[:, order].T, evals[order]
    else:
        op = _centred_operator(X, mean)
        v0 = np.random.default_rng(seed).uniform(-1, 1, size=min(n, g))
        _, s, vt = svds(op, k=k, v0=v0)
        order = np.argsort(s)[::-1]
        comps, var = vt[order], s[order] ** 2 / max(n - 1, 1)
    # A sign convention makes the axes, and every PCA-based metric, reproducible.
    signs = np.sign(comps[np.arange(k), np.abs(comps).argmax(axis=1)])
    comps = comps * signs[:, None]
    return PCA(mean=mean, components=comps, explained_variance=np.maximum(var, 0.0))


def _centred_operator(X, mean: np.ndarray) -> LinearOperator:
    """``X - mean`` as a linear operator, so a sparse ``X`` is never densified."""
    n, g = X.shape
    ones = np.ones(n)

    def matvec(v):
        v = np.asarray(v).reshape(g, -1)
        return np.asarray(X @ v) - np.outer(ones, mean @ v)

    def rmatvec(u):
        u = np.asarray(u).reshape(n, -1)
        return np.asarray(X.T @ u) - np.outer(mean, ones @ u)

    return LinearOperator(
        (n, g), matvec=matvec, rmatvec=rmatvec, matmat=matvec, rmatmat=rmatvec, dtype=np.float64
    )
