"""What each metric means, how its ratio to the floor is defined, and the tables built from them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from scdiff._errors import InputError

COLUMNS = ["group", "metric", "value", "floor", "ratio", "n_real", "n_generated", "better",
           "flagged"]
OVERALL = "overall"


@dataclass(frozen=True)
class Metric:
    """A metric's ideal value and direction; ``tol`` is the smallest floor distance divided by."""

    better: str  # "lower", "higher" or "0.5"
    ideal: float
    tol: float
    text: str  # one line for a biologist
    ratio: bool = True


METRICS: dict[str, Metric] = {
    "mmd": Metric("lower", 0.0, 1e-12, "Maximum mean discrepancy (RBF kernels, PCA space): "
                  "0 when the two clouds of cells coincide."),
    "energy": Metric("lower", 0.0, 1e-12, "Energy distance in PCA space: 0 when the two "
                     "clouds of cells coincide."),
    "wasserstein_pc": Metric("lower", 0.0, 1e-12, "Earth mover's distance along each "
                             "principal component, averaged over PCs."),
    "mean_pearson": Metric("higher", 1.0, 1e-3, "Pearson correlation of per-gene mean "
                           "expression."),
    "mean_spearman": Metric("higher", 1.0, 1e-3, "Spearman (rank) correlation of per-gene mean "
                            "expression."),
    "var_pearson": Metric("higher", 1.0, 1e-3, "Pearson correlation of per-gene variance."),
    "zero_frac_mae": Metric("lower", 0.0, 1e-12, "Mean absolute difference, over genes, of "
                            "the fraction of cells with zero expression."),
    "corr_pearson": Metric("higher", 1.0, 1e-3, "How well the gene-gene correlations of the "
                           "100 most variable genes agree (Pearson)."),
    "corr_distance": Metric("lower", 0.0, 1e-12, "Root mean squared difference between the "
                            "gene-gene correlation matrices of the 100 most variable genes "
                            "(within each condition): 0 when genes co-vary as in real cells."),
    "knn_auc": Metric("0.5", 0.5, 0.01, "ROC AUC of a 5-NN classifier telling real from "
                      "generated cells: 0.5 means indistinguishable, 1 means fully separable."),
    "label_accuracy": Metric("higher", 1.0, 1e-3, "A classifier trained on real cells "
                             "recognises the intended condition of each cell."),
    "marker_overlap": Metric("higher", 1.0, 1e-3, "Fraction of the top marker genes of each "
                             "condition (vs the others) found again."),
    "marker_lfc_pearson": Metric("higher", 1.0, 1e-3, "Pearson correlation of the marker "
                                 "genes' log fold changes."),
    "nn_distance_ratio": Metric("higher", 1.0, 1e-12, "Median distance to the nearest "
                                "training cell over that to the nearest held-out real cell (equally "
                                "many of each): about the floor (real held-out cells) when "
                                "nothing is copied, near 0 for copies.",
                                ratio=False),
    "copy_fraction": Metric("lower", 0.0, 1e-12, "Fraction of cells twice as close to a "
                            "training cell as to any held-out real cell; the floor is that of "
                            "real held-out cells, which copy nothing.", ratio=False),
    "membership_auc": Metric("0.5", 0.5, 0.01, "Privacy: ROC AUC of an attacker telling training "
                             "cells from held-out real cells by their distance to the nearest "
                             "generated cell; 0.5 means the generated cells give no member away.",
                             ratio=False),
}


def ratio(metric: str, value: float, floor: float) -> float:
    """How many times farther from the ideal the score is than the real-vs-real floor.

    ``ratio = |value - ideal| / max(|floor - ideal|, tol)``: 1 means as good as
    a second sample of real cells, 2 twice as far from the ideal. NaN for the
    memorisation metrics, whose floor is a reference point, not a distance.
    """
    info = METRICS[metric]
    if not info.ratio or np.isnan(value) or np.isnan(floor):
        return float("nan")
    return abs(value - info.ideal) / max(abs(floor - info.ideal), info.tol)


def row(group: str, metric: str, value: float, floor: float, n_real: int, n_gen: int,
        flagged: bool = False) -> dict:
    """One row of the evaluate table."""
    return {"group": group, "metric": metric, "value": float(value), "floor": float(floor),
            "ratio": ratio(metric, value, floor), "n_real": int(n_real),
            "n_generated": int(n_gen), "better": METRICS[metric].better, "flagged": flagged}


def weighted_overall(rows: list[dict], weights: dict[str, float]) -> list[dict]:
    """Cell-weighted mean over groups of each per-group metric, as "overall" rows."""
    df = pd.DataFrame(rows)
    out = []
    for metric, sub in df.groupby("metric", sort=False):
        w = sub["group"].map(weights).to_numpy(dtype=float)
        vals = {}
        for col in ("value", "floor"):
            x = sub[col].to_numpy(dtype=float)
            ok = ~np.isnan(x)
            vals[col] = float(np.average(x[ok], weights=w[ok])) if ok.any() else float("nan")
        out.append(row(OVERALL, metric, vals["value"], vals["floor"], sub["n_real"].sum(),
                       sub["n_generated"].sum(), bool(sub["flagged"].any())))
    return out


def benchmark_table(results: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Put the "overall" scores of several methods side by side, with the real-vs-real floor.

    Parameters
    ----------
    results
        Method name -> the table :func:`scdiff.evaluate` returned for it.

    Returns
    -------
    pandas.DataFrame
        One row per metric; a column per method, then ``floor`` (the first
        method's floor; every method's floor is the same when they were scored
        against the same real cells with the same seed and sample sizes) and
        ``better``.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"group": ["overall"], "metric": ["mmd"], "value": [0.2],
    ...                   "floor": [0.1], "better": ["lower"]})
    >>> float(benchmark_table({"a": t, "b": t.assign(value=0.4)}).loc["mmd", "b"])
    0.4
    """
    if not results:
        raise InputError("benchmark_table needs at least one evaluate() table, got none")
    wide, floors, better = {}, {}, {}
    for name, df in results.items():
        missing = {"group", "metric", "value", "floor", "better"} - set(df.columns)
        if missing:
            raise InputError(f"results[{name!r}] is not an evaluate() table: it lacks columns "
                             f"{sorted(missing)}")
        sub = df[df["group"] == OVERALL].set_index("metric")
        wide[name] = sub["value"]
        for metric, f in sub["floor"].items():
            if metric not in floors or np.isnan(floors[metric]):
                floors[metric] = f
        better.update(sub["better"].to_dict())
    table = pd.DataFrame(wide)
    order = [m for m in METRICS if m in table.index] + [m for m in table.index if m not in METRICS]
    table = table.loc[order]
    table["floor"] = pd.Series(floors)
    table["better"] = pd.Series(better)
    table.index.name = "metric"
    return table
