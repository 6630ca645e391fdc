"""Simulate cell types whose cells vary along shared gene programmes, with the truth kept.

The spread genes share is what a per-gene model misses and a latent space holds: here each
cell's log expression is its type's profile plus a few latent factors, each loading on
hundreds of genes (``eta = base[type] + f @ L``), and counts are negative binomial around
it. Some programmes run in every cell type (with a type-specific strength), the others
in one type only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from scdiff._errors import InputError
from scdiff.datasets._truth import gene_names, sample_counts

#: Median expected counts per gene of a cell (its library is this times n_genes): about
#: 3,000 reads over 6,000 genes, 85% zeros, like a 10x 3' panel of every expressed gene.
COUNTS_PER_GENE = 0.5
GENE_LOG_SD = 2.0
LIBRARY_LOG_SD = 0.35
#: The largest shift a cell's programmes add to a gene's log rate, either way.
MAX_SHIFT = 3.0
_CHUNK = 4096  # cells drawn at once: bounds memory at 4096 x genes


def simulate_programmes(
    *,
    n_cells: int = 60_000,
    n_genes: int = 6_000,
    n_cell_types: int = 6,
    n_shared: int = 2,
    n_own: int = 3,
    programme_genes: tuple[int, int] = (100, 400),
    n_markers: int = 20,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> AnnData:
    """Counts of cell types whose cells vary along gene programmes (latent factors).

    Each cell type has a log-normal mean profile with ``n_markers`` up-regulated marker
    genes. ``n_shared`` programmes are active in every type (each type scales them by
    0.5-1.5) and each type has ``n_own`` programmes of its own. A programme loads on
    ``programme_genes`` (a range) expressed genes with weights of either sign, 0.2-0.6 in
    natural log per unit of its factor; every cell draws each active programme's factor
    from a standard normal, so genes of one programme rise and fall together within a
    type. Counts are negative binomial around a log-normal library size times the rate.

    Parameters
    ----------
    n_cells, n_genes, n_cell_types
        The size of the data (cell types ``type_0``, ...; genes ``gene_0000``, ...).
    n_shared, n_own
        Programmes active in every cell type, and per cell type.
    programme_genes
        Inclusive range of the number of genes a programme loads on.
    n_markers
        Marker genes per cell type.
    test_fraction
        Fraction of cells in the test split (obs ``split``), stratified by type.
    seed
        The result is a function of the arguments; the ground truth depends on the seed
        and the design, not on ``n_cells``.

    Returns
    -------
    AnnData
        ``X``: integer counts, float32 CSR. ``obs``: ``cell_type`` (categorical),
        ``n_counts``, ``split``. ``uns["simulation"]``: the ground truth (``kind`` is
        ``"programmes"``), from which :func:`scdiff.datasets.sample_truth` draws fresh cells.

    Examples
    --------
    >>> from scdiff.datasets import simulate_programmes
    >>> adata = simulate_programmes(n_cells=300, n_genes=400, programme_genes=(20, 40), seed=0)
    >>> adata.shape, adata.uns["simulation"]["kind"]
    ((300, 400), 'programmes')
    """
    _check(n_cells, n_genes, n_cell_types, n_shared, n_own, programme_genes, n_markers, test_fraction)
    param_seq, cell_seq = np.random.SeedSequence([seed, 1]).spawn(2)
    params = draw_programme_params(np.random.default_rng(param_seq), n_genes=n_genes,
                                   n_cell_types=n_cell_types, n_shared=n_shared, n_own=n_own,
                                   programme_genes=programme_genes, n_markers=n_markers)
    rng = np.random.default_rng(cell_seq)
    sizes = np.full(n_cell_types, n_cells // n_cell_types)
    sizes[: n_cells % n_cell_types] += 1
    type_of = rng.permutation(np.repeat(np.arange(n_cell_types), sizes))
    counts = draw_programme_cells(rng, params, type_of)
    types = [f"type_{i}" for i in range(n_cell_types)]
    test = np.zeros(n_cells, dtype=bool)
    for t in range(n_cell_types):
        members = np.flatnonzero(type_of == t)
        test[rng.choice(members, size=int(round(test_fraction * len(members))), replace=False)] = True
    obs = pd.DataFrame({
        "cell_type": pd.Categorical([types[t] for t in type_of], categories=types),
        "n_counts": np.asarray(counts.sum(axis=1)).ravel().astype(np.float32),
        "split": pd.Categorical(np.where(test, "test", "train"), categories=["train", "test"]),
    }, index=pd.Index([f"cell_{i:06d}" for i in range(n_cells)]))
    params.update(seed=int(seed), n_cells=int(n_cells), test_fraction=float(test_fraction))
    return AnnData(X=counts, obs=obs, var=pd.DataFrame(index=gene_names(n_genes)),
                   uns={"simulation": params})


def draw_programme_params(rng: np.random.Generator, *, n_genes: int, n_cell_types: int, n_shared: int,
                          n_own: int, programme_genes: tuple[int, int], n_markers: int) -> dict[str, Any]:
    """The truth: type profiles, programmes (loadings and the types they run in), noise."""
    shared = rng.normal(0.0, GENE_LOG_SD, size=n_genes)
    shared += np.log(COUNTS_PER_GENE * n_genes) - np.log(np.exp(shared).sum())
    base = shared[None, :] + rng.normal(0.0, 0.25, size=(n_cell_types, n_genes))
    order = np.argsort(shared)
    markers = rng.choice(order[: int(0.7 * n_genes)], size=n_cell_types * n_markers, replace=False)
    for c in range(n_cell_types):
        base[c, markers[c * n_markers:(c + 1) * n_markers]] += np.log(rng.uniform(4.0, 10.0, n_markers))
    expressed = order[int(0.3 * n_genes):]  # programmes move genes one can see move
    n_prog = n_shared + n_cell_types * n_own
    loadings = np.zeros((n_prog, n_genes))
    strength = np.zeros((n_prog, n_cell_types))  # how strongly each type runs each programme
    lo, hi = programme_genes
    for k in range(n_prog):
        genes = rng.choice(expressed, size=int(rng.integers(lo, hi + 1)), replace=False)
        sign = np.where(rng.random(len(genes)) < 0.6, 1.0, -1.0)
        loadings[k, genes] = sign * rng.uniform(0.2, 0.6, len(genes))
        if k < n_shared:
            strength[k] = rng.uniform(0.5, 1.5, n_cell_types)
        else:
            strength[k, (k - n_shared) // n_own] = 1.0
    return {
        "kind": "programmes", "cell_types": [f"type_{i}" for i in range(n_cell_types)],
        "base_log_mean": base.tolist(), "loadings": loadings.tolist(), "strength": strength.tolist(),
        "dispersion": np.exp(rng.normal(np.log(3.0), 0.5, size=n_genes)).tolist(),
        "library_log_sd": LIBRARY_LOG_SD, "n_shared": int(n_shared), "n_own": int(n_own),
    }


def draw_programme_cells(rng: np.random.Generator, params: Mapping[str, Any], type_of: np.ndarray
                         ) -> sp.csr_matrix:
    """Negative-binomial counts (float32 CSR) of one cell per entry of ``type_of``, ``_CHUNK``
    cells at a time: fresh factors, a fresh library size, fresh counts."""
    base = np.asarray(params["base_log_mean"], dtype=np.float64)
    loadings = np.asarray(params["loadings"], dtype=np.float64)
    strength = np.asarray(params["strength"], dtype=np.float64)
    dispersion = np.asarray(params["dispersion"], dtype=np.float64)
    size_factor = rng.lognormal(0.0, float(params["library_log_sd"]), size=len(type_of))
    blocks = []
    for a in range(0, len(type_of), _CHUNK):
        t = type_of[a:a + _CHUNK]
        factors = rng.standard_normal((len(t), len(loadings))) * strength[:, t].T
        eta = base[t] + np.clip(factors @ loadings, -MAX_SHIFT, MAX_SHIFT)
        blocks.append(sp.csr_matrix(sample_counts(rng, size_factor[a:a + _CHUNK, None] * np.exp(eta),
                                                  dispersion)))
    if not blocks:
        return sp.csr_matrix((0, base.shape[1]), dtype=np.float32)
    return sp.vstack(blocks, format="csr")


def _check(n_cells, n_genes, n_cell_types, n_shared, n_own, programme_genes, n_markers, test_fraction):
    if min(n_cells, n_genes, n_cell_types) < 1 or min(n_shared, n_own, n_markers) < 0:
        raise InputError("n_cells, n_genes and n_cell_types need to be >= 1, the programme and "
                         "marker counts >= 0.")
    lo, hi = programme_genes
    if not 1 <= lo <= hi <= int(0.7 * n_genes):
        raise InputError(f"programme_genes = {programme_genes} needs 1 <= low <= high <= "
                         f"{int(0.7 * n_genes)} (70% of n_genes = {n_genes}).")
    if n_cell_types * n_markers > 0.7 * n_genes:
        raise InputError(f"n_genes = {n_genes} is too small for {n_cell_types} cell types x "
                         f"{n_markers} markers.")
    if not 0.0 <= test_fraction < 1.0:
        raise InputError(f"test_fraction = {test_fraction} needs to be in [0, 1).")
