"""Ground truth of a simulated experiment: the Hill curve and true mean profiles."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from scdiff._errors import InputError
from scdiff.data import log_normalize

#: The scales true_mean reports in.
TruthScale = Literal["log1p", "cp10k", "rate"]
_MC_CHUNK = 1000  # Monte Carlo cells at once: bounds memory for many genes
_CHUNK = 8192  # cells drawn at once by draw_cells: bounds memory for atlas-sized draws


def gene_names(n_genes: int) -> pd.Index:
    """The simulator's gene names: ``gene_0000``, ``gene_0001``, ..."""
    return pd.Index([f"gene_{i:04d}" for i in range(n_genes)])


def hill_curve(dose: float | np.ndarray, *, ec50: float, hill: float) -> float | np.ndarray:
    """Fraction of the maximal effect reached at ``dose``: ``d^h / (EC50^h + d^h)``.

    Parameters
    ----------
    dose
        Dose (or array of doses), non-negative.
    ec50
        Dose at which half of the maximal effect is reached.
    hill
        Hill coefficient ``h``: the steepness of the curve.

    Returns
    -------
    The fraction, in ``[0, 1)``; 0 at dose 0 and 0.5 at ``ec50``.

    Examples
    --------
    >>> from scdiff.datasets import hill_curve
    >>> float(hill_curve(50.0, ec50=50.0, hill=2.0))
    0.5
    """
    d = np.asarray(dose, dtype=float)
    # Written as 1 / (1 + (EC50/d)^h) to stay finite at large doses.
    with np.errstate(divide="ignore"):
        out = np.where(d > 0, 1.0 / (1.0 + (ec50 / np.where(d > 0, d, 1.0)) ** hill), 0.0)
    return float(out) if out.ndim == 0 else out


def _params_of(source: AnnData | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(source, AnnData):
        if "simulation" not in source.uns:
            raise InputError(
                'adata.uns["simulation"] not found: pass an AnnData made by '
                "scdiff.datasets.simulate, or its uns['simulation'] dict."
            )
        return source.uns["simulation"]
    return source


def _log_rate(params: Mapping[str, Any], cell_type: str, drug: str, dose: float) -> np.ndarray:
    """Natural log of the expected counts of a size-factor-1 cell in one condition."""
    cell_types = [str(c) for c in np.atleast_1d(params["cell_types"])]
    drugs = [str(d) for d in np.atleast_1d(params["drugs"])]
    if cell_type not in cell_types:
        raise InputError(f"cell_type = {cell_type!r} needs to be one of {cell_types}.")
    if drug not in drugs:
        raise InputError(f"drug = {drug!r} needs to be one of {drugs}.")
    if dose < 0:
        raise InputError(f"dose = {dose} needs to be >= 0.")
    c = cell_types.index(cell_type)
    eta = np.asarray(params["base_log_mean"], dtype=float)[c].copy()
    if drug != str(params["control"]):
        frac = hill_curve(dose, ec50=float(params["ec50"][drug]), hill=float(params["hill"][drug]))
        eta += np.asarray(params["max_lfc"][drug], dtype=float)[c] * frac
    return eta


def true_mean(
    source: AnnData | Mapping[str, Any],
    *,
    cell_type: str,
    drug: str,
    dose: float,
    scale: TruthScale = "log1p",
    n_samples: int = 5000,
    seed: int = 0,
) -> np.ndarray:
    """Expected expression profile of one simulated condition (the ground truth).

    Valid for any dose, including doses never simulated, so a model's
    predictions at held-out doses can be scored against the truth.

    Parameters
    ----------
    source
        An AnnData made by :func:`simulate`, or its ``uns["simulation"]`` dict.
    cell_type, drug, dose
        The condition. Dose 0 of any drug, or the control drug at any dose,
        gives the untreated profile of the cell type.
    scale
        ``"log1p"``: the expected value of ``.X`` (log1p of counts per 10k),
        estimated by Monte Carlo from the generative model with ``n_samples``
        cells (its standard error falls as ``1 / sqrt(n_samples)``).
        ``"cp10k"``: expected counts per 10k, ``1e4 * rate / rate.sum()``.
        ``"rate"``: expected raw counts of a cell with size factor 1 (exact);
        its log is ``base + max_lfc * hill_curve(dose)``.
    n_samples
        Monte Carlo cells for ``scale="log1p"``.
    seed
        Monte Carlo seed. The same seed for every condition gives common random
        numbers, so differences between conditions carry little noise.

    Returns
    -------
    Array of shape ``(n_genes,)``, float64, ordered as ``adata.var_names``.

    Examples
    --------
    >>> from scdiff.datasets import simulate, true_mean
    >>> adata = simulate(n_cells=500, n_genes=200, seed=0)
    >>> mu = true_mean(adata, cell_type="type_0", drug="drugA", dose=75.0)
    >>> mu.shape
    (200,)
    """
    params = _params_of(source)
    eta = _log_rate(params, cell_type, drug, float(dose))
    rate = np.exp(eta)
    if scale == "rate":
        return rate
    if scale == "cp10k":
        return 1e4 * rate / rate.sum()
    if scale != "log1p":
        raise InputError(f"scale = {scale!r} needs to be one of 'log1p', 'cp10k', 'rate'.")
    if n_samples < 1:
        raise InputError(f"n_samples = {n_samples} needs to be >= 1.")
    rng = np.random.default_rng(seed)
    dispersion = np.asarray(params["dispersion"], dtype=float)
    total = np.zeros_like(rate)
    for start in range(0, n_samples, _MC_CHUNK):
        n = min(_MC_CHUNK, n_samples - start)
        size_factor = rng.lognormal(0.0, float(params["library_log_sd"]), size=(n, 1))
        total += log_normalize(sample_counts(rng, size_factor * rate, dispersion)).sum(axis=0)
    return total / n_samples


def sample_counts(rng: np.random.Generator, mean: np.ndarray, dispersion: np.ndarray) -> np.ndarray:
    """Negative binomial counts as a gamma-Poisson mixture (variance mu + mu^2 / theta)."""
    lam = rng.gamma(dispersion, mean / dispersion)
    return rng.poisson(lam).astype(np.float32)


def draw_cells(rng: np.random.Generator, params: Mapping[str, Any], rates: np.ndarray,
               group_of: np.ndarray) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """(counts, log1p CP10k) of one cell per entry of ``group_of``, as CSR matrices.

    Each cell gets a log-normal library size and negative-binomial counts around it
    times its group's row of ``rates`` (expected counts at size factor 1). Cells are
    drawn ``_CHUNK`` at a time, so memory stays bounded however many are asked for.
    """
    size_factor = rng.lognormal(0.0, float(params["library_log_sd"]), size=len(group_of))
    dispersion = np.asarray(params["dispersion"], dtype=float)
    count_blocks, x_blocks = [], []
    for start in range(0, len(group_of), _CHUNK):
        idx = slice(start, start + _CHUNK)
        counts = sample_counts(rng, size_factor[idx, None] * rates[group_of[idx]], dispersion)
        count_blocks.append(sp.csr_matrix(counts))
        x_blocks.append(sp.csr_matrix(log_normalize(counts).astype(np.float32)))
    if not count_blocks:
        empty = sp.csr_matrix((0, rates.shape[1]), dtype=np.float32)
        return empty, empty.copy()
    return sp.vstack(count_blocks, format="csr"), sp.vstack(x_blocks, format="csr")


def sample_truth(
    source: AnnData | Mapping[str, Any],
    like: AnnData | pd.DataFrame,
    *,
    seed: int = 0,
    keys: tuple[str, str, str] = ("cell_type", "drug", "dose"),
) -> AnnData:
    """Fresh cells from a simulation's ground truth: what a perfect generator would give.

    One cell per row of ``like``'s obs, drawn from the same generative model as
    :func:`simulate` (library size, negative-binomial counts, log1p of counts per
    10k) for that row's condition, any dose included. Scoring these cells as if
    generated shows what a model that learned the truth exactly would score, so
    a metric's or a target's own noise can be told from a model's error.

    Parameters
    ----------
    source
        An AnnData made by :func:`simulate` or :func:`simulate_programmes`, or its
        ``uns["simulation"]`` dict.
    like
        Cells (an AnnData, or its ``.obs``) whose conditions are drawn, one cell
        per row, as in :meth:`scdiff.ConditionalDiffusion.sample`; the obs table is
        copied into the result.
    seed
        Seed of the draw.
    keys
        The obs columns holding the cell type, the drug and the dose (a programmes
        simulation reads only the cell type).

    Returns
    -------
    AnnData
        ``.X``: log1p of counts per 10k (float32 CSR); ``layers["counts"]``: the
        counts; ``obs``: a copy of ``like``'s with ``n_counts`` set to the new totals;
        genes as in :func:`simulate`.

    Examples
    --------
    >>> from scdiff.datasets import sample_truth, simulate
    >>> adata = simulate(n_cells=500, n_genes=200, seed=0)
    >>> fresh = sample_truth(adata, adata[:10], seed=1)
    >>> fresh.shape
    (10, 200)
    """
    params = _params_of(source)
    obs = like.obs if isinstance(like, AnnData) else like
    if params.get("kind") == "programmes":
        return _programme_truth(params, obs, keys[0], seed)
    missing = [k for k in keys if k not in obs.columns]
    if missing:
        raise InputError(f"obs has no column {missing[0]!r}; sample_truth needs the columns {list(keys)}.")
    frame = pd.DataFrame({"cell_type": obs[keys[0]].astype(str).to_numpy(),
                          "drug": obs[keys[1]].astype(str).to_numpy(),
                          "dose": pd.to_numeric(obs[keys[2]], errors="coerce").to_numpy(float)})
    if frame["dose"].isna().any():
        raise InputError(f"obs[{keys[2]!r}] has missing or non-numeric values; give every cell a dose.")
    group_of = frame.groupby(list(frame.columns), sort=False).ngroup().to_numpy()
    conditions = frame.drop_duplicates().itertuples(index=False)  # in ngroup's order
    n_genes = len(np.asarray(params["base_log_mean"])[0])
    rates = (np.exp(np.stack([_log_rate(params, *c) for c in conditions])) if len(frame)
             else np.zeros((0, n_genes)))
    counts, x = draw_cells(np.random.default_rng(seed), params, rates, group_of)
    out_obs = obs.copy()
    out_obs["n_counts"] = np.asarray(counts.sum(axis=1)).ravel().astype(np.float32)
    return AnnData(X=x, obs=out_obs, var=pd.DataFrame(index=gene_names(n_genes)),
                   layers={"counts": counts})


def _programme_truth(params: Mapping[str, Any], obs: pd.DataFrame, key: str, seed: int) -> AnnData:
    """:func:`sample_truth` of a :func:`simulate_programmes` world: fresh factors and counts."""
    from scdiff.datasets._programmes import draw_programme_cells

    if key not in obs.columns:
        raise InputError(f"obs has no column {key!r}; sample_truth needs the cell types.")
    types = [str(t) for t in params["cell_types"]]
    labels = obs[key].astype(str).to_numpy()
    unknown = sorted(set(labels) - set(types))
    if unknown:
        raise InputError(f"obs[{key!r}] holds {unknown[:3]}, which the simulation has not; its cell "
                         f"types are {types}.")
    counts = draw_programme_cells(np.random.default_rng(seed), params,
                                  np.array([types.index(t) for t in labels], dtype=int))
    out_obs = obs.copy()
    out_obs["n_counts"] = np.asarray(counts.sum(axis=1)).ravel().astype(np.float32)
    return AnnData(X=log_normalize(counts), obs=out_obs,
                   var=pd.DataFrame(index=gene_names(counts.shape[1])), layers={"counts": counts})
