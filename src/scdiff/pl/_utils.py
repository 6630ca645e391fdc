"""Figure plumbing shared by the plotting functions: scanpy-like ``ax``/``show``/``save``."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from scdiff.data import align_genes, condition_keys, group_labels, group_order


def subplots(n: int, *, ncols: int | None = None, panel: tuple[float, float] = (4.0, 4.0),
             show: bool = True):
    """A figure with ``n`` panels and the flat array of its axes.

    When the figure will not be shown it is built without pyplot (Agg canvas),
    so saving works headless and leaves no figure open in a notebook session.
    """
    ncols = min(n, ncols or n)
    nrows = math.ceil(n / ncols)
    size = (panel[0] * ncols, panel[1] * nrows)
    if show:
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(nrows, ncols, figsize=size, squeeze=False, layout="constrained")
    else:
        from matplotlib.figure import Figure

        fig = Figure(figsize=size, layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False)
    axes = np.asarray(axes).ravel()
    for extra in axes[n:]:
        extra.set_visible(False)
    return fig, axes[:n]


def resolve_show(show: bool | None, save) -> bool:
    """scanpy's default: show unless the figure is only being saved."""
    return save is None if show is None else bool(show)


def finish(fig, axes, *, show: bool, save: str | Path | None):
    """Save and/or show the figure; return the axes unless shown (as scanpy does)."""
    if save is not None:
        fig.savefig(Path(save), dpi=110, bbox_inches="tight")
    if show:
        import matplotlib.pyplot as plt

        plt.show()
        return None
    return axes


def given_axes(ax, n: int, what: str):
    """Axes the caller passed: one ``Axes`` for one panel, a sequence of ``n`` otherwise."""
    from scdiff._errors import InputError

    axes = np.atleast_1d(np.asarray(ax, dtype=object)).ravel()
    if len(axes) != n:
        raise InputError(f"{what} draws {n} panel(s) but ax holds {len(axes)}; pass {n} axes "
                         f"or ax=None")
    return axes[0].figure, axes


def category_colors(n: int) -> list:
    """``n`` distinct colours (tab10, then tab20, then a hue wheel)."""
    from matplotlib import colormaps

    if n <= 10:
        return [colormaps["tab10"](i) for i in range(n)]
    if n <= 20:
        return [colormaps["tab20"](i) for i in range(n)]
    return [colormaps["hsv"](i / n) for i in range(n)]


def shared_groups(real, generated, condition):
    """``generated`` on ``real``'s genes, both group labellings, and the groups present
    in both, in ``real``'s order."""
    keys = condition_keys(condition)
    generated = align_genes(real, generated, "generated")
    lab_r, lab_g = group_labels(real, keys, "real"), group_labels(generated, keys, "generated")
    groups = [g for g in group_order(real, keys, lab_r) if (lab_g == g).any()]
    return generated, lab_r, lab_g, groups
