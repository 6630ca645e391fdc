"""Marker genes of each condition, real beside generated."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from anndata import AnnData

from scdiff._errors import InputError
from scdiff.metrics import gene_stats, marker_scores, top_markers
from scdiff.pl._utils import finish, given_axes, resolve_show, shared_groups, subplots


def marker_dotplot(
    real: AnnData,
    generated: AnnData,
    *,
    condition: str | Sequence[str],
    n_genes: int = 3,
    max_groups: int = 20,
    ax=None,
    show: bool | None = None,
    save: str | Path | None = None,
):
    """Dot plot of each condition's top real marker genes, in real and in generated cells.

    Markers are the ``n_genes`` genes with the largest Welch t statistic of a
    condition against the others in the real cells. Each condition gets two
    rows, real then generated; dot size is the fraction of cells expressing
    the gene, colour the mean log-expression.

    Parameters
    ----------
    real, generated
        Log-normalized cells with the same genes.
    condition
        ``.obs`` column(s) present in both (at least two conditions).
    n_genes
        Markers per condition.
    max_groups
        Draw at most this many conditions.
    ax
        One axes to draw on.
    show, save
        Show the figure (default: only when not saving); file to save it to.

    Returns
    -------
    The axes, unless the figure was shown.

    Examples
    --------
    >>> import scanpy as sc, scdiff.pl
    >>> real = sc.datasets.pbmc68k_reduced().raw.to_adata()
    >>> ax = scdiff.pl.marker_dotplot(real[:300], real[300:], condition="bulk_labels",
    ...                               show=False)
    """
    generated, lab_r, lab_g, groups = shared_groups(real, generated, condition)
    groups = groups[:max_groups]
    if len(groups) < 2:
        raise InputError("marker_dotplot needs at least two conditions present in both real "
                         "and generated cells")
    st_r = {g: gene_stats(real.X[np.flatnonzero(lab_r == g)]) for g in groups}
    st_g = {g: gene_stats(generated.X[np.flatnonzero(lab_g == g)]) for g in groups}
    genes: list[int] = []
    for t, _ in marker_scores(st_r).values():
        genes += [int(i) for i in top_markers(t, k=n_genes) if i not in genes]
    row_names, frac, mean = [], [], []
    for g in groups:
        for origin, st in (("real", st_r[g]), ("generated", st_g[g])):
            row_names.append(f"{g} ({origin})")
            frac.append(1.0 - st.zero_frac[genes])
            mean.append(st.mean[genes])
    frac, mean = np.array(frac), np.array(mean)
    show = resolve_show(show, save)
    if ax is None:
        fig, axes = subplots(1, panel=(0.35 * len(genes) + 3.0, 0.28 * len(row_names) + 1.5),
                             show=show)
    else:
        fig, axes = given_axes(ax, 1, "marker_dotplot")
    a = axes[0]
    yy, xx = np.meshgrid(np.arange(len(row_names)), np.arange(len(genes)), indexing="ij")
    dots = a.scatter(xx.ravel(), yy.ravel(), s=frac.ravel() * 120, c=mean.ravel(),
                     cmap="Reds", vmin=0, edgecolors="0.3", linewidths=0.3)
    a.set_xticks(np.arange(len(genes)), [str(real.var_names[i]) for i in genes], rotation=90,
                 fontsize=7)
    a.set_yticks(np.arange(len(row_names)), row_names, fontsize=7)
    a.set_xlim(-0.6, len(genes) - 0.4)
    a.set_ylim(len(row_names) - 0.5, -0.5)
    for i in range(1, len(groups)):
        a.axhline(2 * i - 0.5, color="0.85", lw=0.6)
    fig.colorbar(dots, ax=a, shrink=0.5, label="mean log-expression")
    a.set_title("markers: dot size = fraction expressing", fontsize=9)
    return finish(fig, a, show=show, save=save)
