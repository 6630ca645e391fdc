"""Real and generated cells on one embedding."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from anndata import AnnData

from scdiff._errors import InputError
from scdiff.data import align_genes, condition_keys, group_labels, select_rows, subsample
from scdiff.metrics import fit_pca
from scdiff.pl._utils import category_colors, finish, given_axes, resolve_show, subplots

ORIGIN_COLORS = {"real": "#4c72b0", "generated": "#dd8452"}


def embed(real: AnnData, generated: AnnData, *, basis: str = "umap", n_pcs: int = 30,
          max_cells: int = 5000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """2-D coordinates of (subsampled) real and generated cells on a shared embedding.

    The PCA is fitted on the real cells and the generated cells projected on
    it; the UMAP is then fitted on both sets' PCs together.

    Returns
    -------
    coords, real_rows, generated_rows
        Coordinates (real cells first) and the row indices of the cells drawn.
    """
    if basis not in ("umap", "pca"):
        raise InputError(f"basis must be 'umap' or 'pca', got {basis!r}")
    generated = align_genes(real, generated, "generated")
    rng = np.random.default_rng(seed)
    r_idx = subsample(np.arange(real.n_obs), max_cells, rng)
    g_idx = subsample(np.arange(generated.n_obs), max_cells, rng)
    xr = select_rows(real.X, r_idx)
    pca = fit_pca(xr, n_pcs=n_pcs, seed=seed)
    z = np.vstack([pca.transform(xr), pca.transform(select_rows(generated.X, g_idx))])
    if basis == "pca":
        return z[:, :2], r_idx, g_idx
    import scanpy as sc

    # Exact kNN (sklearn) skips pynndescent's slow first-call compilation.
    tmp = AnnData(obs=pd.DataFrame(index=[str(i) for i in range(len(z))]), obsm={"X_pca": z})
    sc.pp.neighbors(tmp, n_neighbors=15, use_rep="X_pca", transformer="sklearn",
                    random_state=seed)
    sc.tl.umap(tmp, min_dist=0.3, maxiter=200, random_state=seed)
    return np.asarray(tmp.obsm["X_umap"]), r_idx, g_idx


def compare(
    real: AnnData,
    generated: AnnData,
    *,
    color: str | Sequence[str] | None = None,
    basis: str = "umap",
    n_pcs: int = 30,
    max_cells: int = 5000,
    seed: int = 0,
    ax=None,
    show: bool | None = None,
    save: str | Path | None = None,
):
    """Real and generated cells on one UMAP, coloured by origin (and by ``color``).

    Parameters
    ----------
    real, generated
        Log-normalized cells with the same genes.
    color
        ``.obs`` column(s) present in both; adds a second panel coloured by it.
    basis
        ``"umap"`` (PCA of real cells, then UMAP of both) or ``"pca"`` (first two PCs).
    n_pcs
        PCs fed to the UMAP.
    max_cells
        Each set is subsampled to this many cells (seeded).
    seed
        Seeds subsampling, PCA and UMAP.
    ax
        Axes to draw on: one, or two when ``color`` is given.
    show
        Show the figure; by default only when not saving.
    save
        File to save the figure to.

    Returns
    -------
    The axes, unless the figure was shown.

    Examples
    --------
    >>> import scanpy as sc, scdiff.pl
    >>> real = sc.datasets.pbmc68k_reduced().raw.to_adata()
    >>> axes = scdiff.pl.compare(real[:300], real[300:], color="bulk_labels", show=False)
    """
    keys = condition_keys(color)
    coords, r_idx, g_idx = embed(real, generated, basis=basis, n_pcs=n_pcs,
                                 max_cells=max_cells, seed=seed)
    origin = np.array(["real"] * len(r_idx) + ["generated"] * len(g_idx))
    panels = [("origin", origin)]
    if keys:
        gen = align_genes(real, generated, "generated")
        labels = np.concatenate([group_labels(real, keys, "real")[r_idx],
                                 group_labels(gen, keys, "generated")[g_idx]])
        panels.append((" | ".join(keys), labels))
    show = resolve_show(show, save)
    if ax is None:
        fig, axes = subplots(len(panels), panel=(4.5, 4.0), show=show)
    else:
        fig, axes = given_axes(ax, len(panels), "compare")
    order = np.random.default_rng(seed).permutation(len(coords))  # no set hides the other
    size = max(2.0, min(20.0, 8000 / len(coords)))
    label = "UMAP" if basis == "umap" else "PC"
    for a, (title, values) in zip(axes, panels, strict=True):
        cats = ["real", "generated"] if title == "origin" else sorted(set(values.tolist()))
        colors = (dict(ORIGIN_COLORS) if title == "origin"
                  else dict(zip(cats, category_colors(len(cats)), strict=True)))
        a.scatter(coords[order, 0], coords[order, 1], s=size, linewidths=0, rasterized=True,
                  c=[colors[v] for v in values[order]])
        for c in cats:
            a.scatter([], [], s=20, color=colors[c], label=c)
        a.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=7,
                 markerscale=1.0)
        a.set(title=title, xticks=[], yticks=[], xlabel=f"{label}1", ylabel=f"{label}2")
    return finish(fig, axes, show=show, save=save)
