"""Dose-response curves (the table of :func:`scdiff.perturb.dose_response`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from scdiff._errors import InputError
from scdiff.pl._utils import finish, given_axes, resolve_show, subplots


def dose_response(
    table: pd.DataFrame,
    *,
    logx: bool = True,
    ax=None,
    show: bool | None = None,
    save: str | Path | None = None,
):
    """Plot a :func:`scdiff.perturb.dose_response` table: one line per gene against the dose.

    Parameters
    ----------
    table
        Indexed by dose, one column per gene.
    logx
        Symmetric-log dose axis (dose 0 stays visible).
    ax, show, save
        Axes to draw on; show the figure (default: only when not saving); file to save to.

    Returns
    -------
    The axes, unless the figure was shown.

    Examples
    --------
    >>> import pandas as pd, scdiff.pl
    >>> t = pd.DataFrame({"g1": [0.1, 0.5, 0.9]}, index=pd.Index([0.0, 10.0, 100.0], name="dose"))
    >>> ax = scdiff.pl.dose_response(t, show=False)
    """
    if table.empty:
        raise InputError("the dose-response table is empty; nothing to plot.")
    show = resolve_show(show, save)
    fig, axes = subplots(1, panel=(6.0, 4.0), show=show) if ax is None else given_axes(ax, 1, "dose response")
    a = axes[0]
    x = table.index.to_numpy(dtype=float)
    for gene in table.columns:
        a.plot(x, table[gene].to_numpy(), marker="o", ms=3, label=str(gene))
    if logx and (x >= 0).all():
        positive = x[x > 0]
        a.set_xscale("symlog", linthresh=float(positive.min()) if positive.size else 1.0)
    a.set_xlabel(table.index.name or "dose")
    a.set_ylabel("mean generated expression (log1p CP10k)")
    a.legend(fontsize=7, ncol=2 if len(table.columns) > 8 else 1, frameon=False)
    return finish(fig, axes, show=show, save=save)
