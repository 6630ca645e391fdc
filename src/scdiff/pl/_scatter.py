"""Per-condition mean expression of real vs generated cells."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from anndata import AnnData

from scdiff.metrics import correlation, gene_stats
from scdiff.pl._utils import finish, given_axes, resolve_show, shared_groups, subplots


def mean_scatter(
    real: AnnData,
    generated: AnnData,
    *,
    condition: str | Sequence[str] | None = None,
    ncols: int = 4,
    max_groups: int = 16,
    ax=None,
    show: bool | None = None,
    save: str | Path | None = None,
):
    """Scatter of each gene's mean expression, real (x) vs generated (y), one panel per condition.

    Parameters
    ----------
    real, generated
        Log-normalized cells with the same genes.
    condition
        ``.obs`` column(s) present in both; None draws one panel for all cells.
    ncols
        Panels per row.
    max_groups
        Draw at most this many conditions (the largest in ``real``).
    ax
        Axes to draw on, one per condition drawn.
    show, save
        Show the figure (default: only when not saving); file to save it to.

    Returns
    -------
    The axes, unless the figure was shown.

    Examples
    --------
    >>> import scanpy as sc, scdiff.pl
    >>> real = sc.datasets.pbmc68k_reduced().raw.to_adata()
    >>> axes = scdiff.pl.mean_scatter(real[:300], real[300:], condition="bulk_labels",
    ...                               show=False)
    """
    generated, lab_r, lab_g, groups = shared_groups(real, generated, condition)
    largest = set(sorted(groups, key=lambda g: -(lab_r == g).sum())[:max_groups])
    groups = [g for g in groups if g in largest]  # the largest, in real's order
    show = resolve_show(show, save)
    if ax is None:
        fig, axes = subplots(len(groups), ncols=ncols, panel=(3.0, 3.0), show=show)
    else:
        fig, axes = given_axes(ax, len(groups), "mean_scatter")
    for a, g in zip(axes, groups, strict=True):
        mr = gene_stats(real.X[np.flatnonzero(lab_r == g)]).mean
        mg = gene_stats(generated.X[np.flatnonzero(lab_g == g)]).mean
        hi = float(max(mr.max(), mg.max(), 1e-3)) * 1.05
        a.plot([0, hi], [0, hi], color="0.6", lw=0.8, zorder=0)
        a.scatter(mr, mg, s=4, alpha=0.6, linewidths=0, color="#4c72b0", rasterized=True)
        a.set(xlim=(0, hi), ylim=(0, hi), xlabel="real mean", ylabel="generated mean")
        a.set_title(f"{g}\nr = {correlation(mr, mg):.3f}", fontsize=9)
    return finish(fig, axes, show=show, save=save)
