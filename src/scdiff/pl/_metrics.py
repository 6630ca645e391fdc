"""Each evaluation metric beside its real-vs-real floor."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from scdiff._errors import InputError
from scdiff.pl._utils import finish, given_axes, resolve_show, subplots


def metric_bars(
    table: pd.DataFrame,
    *,
    group: str = "overall",
    ncols: int = 5,
    ax=None,
    show: bool | None = None,
    save: str | Path | None = None,
):
    """One small bar chart per metric: the generated cells' score beside the floor.

    Parameters
    ----------
    table
        A table from :func:`scdiff.evaluate`.
    group
        Which group's rows to draw.
    ncols
        Panels per row.
    ax
        Axes to draw on, one per metric.
    show, save
        Show the figure (default: only when not saving); file to save it to.

    Returns
    -------
    The axes, unless the figure was shown.

    Examples
    --------
    >>> import pandas as pd, scdiff.pl
    >>> t = pd.DataFrame({"group": ["overall"], "metric": ["mmd"], "value": [0.2],
    ...                   "floor": [0.1], "better": ["lower"]})
    >>> axes = scdiff.pl.metric_bars(t, show=False)
    """
    if not {"group", "metric", "value", "floor", "better"} <= set(table.columns):
        raise InputError("metric_bars needs a table from scdiff.evaluate")
    sub = table[table["group"] == group]
    if sub.empty:
        raise InputError(f"group {group!r} not in the table; groups: "
                         f"{', '.join(map(str, table['group'].unique()))}")
    show = resolve_show(show, save)
    if ax is None:
        fig, axes = subplots(len(sub), ncols=ncols, panel=(2.2, 2.4), show=show)
    else:
        fig, axes = given_axes(ax, len(sub), "metric_bars")
    for a, (_, r) in zip(axes, sub.iterrows(), strict=True):
        vals = [r["value"], r["floor"]]
        a.bar([0, 1], np.nan_to_num(vals), color=["#dd8452", "#9aa5b1"], width=0.7)
        if r["better"] == "0.5":
            a.axhline(0.5, color="0.3", lw=0.8, ls="--")
        a.set_xticks([0, 1], ["generated", "floor"], fontsize=8)
        a.tick_params(axis="y", labelsize=7)
        a.set_title(f"{r['metric']}\n({r['better']} is better)", fontsize=8)
        top = float(np.nanmax(np.abs(np.nan_to_num(vals)))) or 1.0
        a.set_ylim(min(0.0, float(np.nanmin(np.nan_to_num(vals)))) * 1.2, top * 1.2)
        for x, v in enumerate(vals):
            a.text(x, np.nan_to_num(v), f"{v:.3g}", ha="center", va="bottom", fontsize=7)
    return finish(fig, axes, show=show, save=save)
