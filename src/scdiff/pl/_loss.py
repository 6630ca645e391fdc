"""Training loss curve from a run's CSV log."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from scdiff._errors import InputError
from scdiff.pl._utils import finish, given_axes, resolve_show, subplots


def loss(
    log: str | Path | pd.DataFrame | list | object,
    *,
    smooth: int | None = None,
    logy: bool = True,
    ax=None,
    show: bool | None = None,
    save: str | Path | None = None,
):
    """Plot the training loss against the step, with the learning rate if logged.

    Parameters
    ----------
    log
        A training log: a trained model (its ``.log``), a list of log rows, a CSV
        path (a run directory or its log) or a DataFrame with
        columns ``step`` and ``loss``, and optionally ``lr``.
    smooth
        Window of the running mean drawn over the raw loss; default about
        1/50 of the steps.
    logy
        Log-scale loss axis.
    ax
        Axes to draw on.
    show, save
        Show the figure (default: only when not saving); file to save it to.

    Returns
    -------
    The axes, unless the figure was shown.

    Examples
    --------
    >>> import pandas as pd, scdiff.pl
    >>> log = pd.DataFrame({"step": range(100), "loss": [1 / (i + 1) for i in range(100)]})
    >>> ax = scdiff.pl.loss(log, show=False)
    """
    log = _as_frame(log)
    missing = {"step", "loss"} - set(log.columns)
    if missing:
        raise InputError(f"training log lacks column(s) {sorted(missing)}; it needs step and loss")
    log = log.dropna(subset=["loss"]).sort_values("step")
    show = resolve_show(show, save)
    if ax is None:
        fig, axes = subplots(1, panel=(6.0, 3.5), show=show)
    else:
        fig, axes = given_axes(ax, 1, "loss")
    a = axes[0]
    window = smooth or max(1, len(log) // 50)
    a.plot(log["step"], log["loss"], color="#4c72b0", alpha=0.3 if window > 1 else 1.0, lw=0.8,
           label="loss")
    if window > 1:
        a.plot(log["step"], log["loss"].rolling(window, min_periods=1).mean(), color="#4c72b0",
               lw=1.5, label=f"running mean ({window})")
    if logy and (log["loss"] > 0).all():
        a.set_yscale("log")
    a.set(xlabel="step", ylabel="loss")
    _second_axis(a, log)
    a.legend(frameon=False, fontsize=8, loc="upper right")
    return finish(fig, a, show=show, save=save)


def _as_frame(log) -> pd.DataFrame:
    """The log as a DataFrame, from a model, a list of rows, a run folder or a CSV file."""
    if hasattr(log, "log") and not isinstance(log, (str, Path, pd.DataFrame)):
        log = log.log  # a ConditionalDiffusion
    if isinstance(log, list):
        return pd.DataFrame(log)
    if isinstance(log, pd.DataFrame):
        return log
    path = Path(log)
    if path.is_dir():
        candidates = sorted(path.glob("*.csv"))
        if not candidates:
            raise InputError(f"no CSV training log in {path}; pass the log file itself")
        path = candidates[0]
    if not path.exists():
        raise InputError(f"training log {path} does not exist")
    return pd.read_csv(path)


def _second_axis(a, log: pd.DataFrame) -> None:
    """The monitor's MMD and its floor when logged, else the learning rate, on a twin axis."""
    if "mmd" in log.columns and log["mmd"].notna().any():
        # monitoring: the generated sample's MMD to held-out cells, and its floor
        twin = a.twinx()
        watched = log.dropna(subset=["mmd"])
        twin.plot(watched["step"], watched["mmd"], "o-", color="#55a868", ms=3, lw=1.2)
        twin.axhline(float(watched["mmd_floor"].iloc[-1]), color="#55a868", ls="--", lw=0.8)
        twin.set_ylabel("MMD to held-out (dashed: floor)", color="#55a868")
        twin.tick_params(axis="y", colors="#55a868", labelsize=7)
    elif "lr" in log.columns and np.isfinite(log["lr"]).any():
        twin = a.twinx()
        twin.plot(log["step"], log["lr"], color="#dd8452", lw=1.0)
        twin.set_ylabel("learning rate", color="#dd8452")
        twin.tick_params(axis="y", colors="#dd8452", labelsize=7)
