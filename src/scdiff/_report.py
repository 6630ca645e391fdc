"""``write_report``: an evaluation a biologist can read, with its tables and figures.

It sits above both the metrics (the table) and the plots (the figures).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from anndata import AnnData

from scdiff._errors import InputError
from scdiff.data import condition_keys, group_labels
from scdiff.data._io import check_out_dir
from scdiff.metrics import METRICS, OVERALL

_HOW_TO_READ = (
    "Every score is shown beside its **floor**: the same metric computed between two "
    "disjoint samples of *real* cells of the same size. The floor is what perfect generated "
    "cells would score; no model should be expected to beat it. **ratio** = distance of the "
    "score from the ideal value divided by the floor's distance: 1 means as good as real "
    "data, 2 means twice as far from ideal, and so on."
)


def write_report(
    out_dir: str | Path,
    real: AnnData,
    generated: AnnData,
    table: pd.DataFrame,
    *,
    condition: str | Sequence[str] | None = None,
    title: str = "scdiff evaluation",
    overwrite: bool = False,
    seed: int = 0,
) -> Path:
    """Write ``report.md``, ``metrics.json``, ``metrics.csv`` and figures to ``out_dir``.

    Parameters
    ----------
    out_dir
        Folder to create; an existing non-empty folder is refused unless
        ``overwrite``.
    real, generated
        The cells that ``table`` scored.
    table
        The table :func:`scdiff.evaluate` returned.
    condition
        The condition column(s) used for ``table``; colours and splits the figures.
    title
        First heading of the report.
    overwrite
        Write into an existing non-empty folder, replacing the files of a previous report.
    seed
        Seeds the subsampling and the UMAP of the figures.

    Returns
    -------
    Path
        The path of ``report.md``.

    Examples
    --------
    >>> import scanpy as sc, scdiff, tempfile
    >>> real = sc.datasets.pbmc68k_reduced().raw.to_adata()
    >>> t = scdiff.evaluate(real[:350], real[350:], condition="bulk_labels")
    >>> path = scdiff.write_report(tempfile.mkdtemp() + "/r", real[:350], real[350:], t,
    ...                                     condition="bulk_labels")
    """
    out = check_out_dir(out_dir, overwrite=overwrite, name="out_dir")
    missing = {"group", "metric", "value", "floor", "ratio", "better"} - set(table.columns)
    if missing:
        raise InputError(f"table lacks columns {sorted(missing)}; pass the table that "
                         f"scdiff.evaluate returned")
    out.parent.mkdir(parents=True, exist_ok=True)
    params = dict(table.attrs.get("scdiff", {}))
    # built in a temporary folder and moved in when whole (report.md last): an interruption
    # leaves no half report, and an earlier report stays as it was
    build = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        table.to_csv(build / "metrics.csv", index=False)
        records = [{k: _jsonable(v) for k, v in r.items()} for r in table.to_dict(orient="records")]
        with open(build / "metrics.json", "w") as fh:
            json.dump({"params": _jsonable(params), "metrics": records}, fh, indent=1)
        figures = _figures(build, real, generated, table, condition, seed)
        (build / "report.md").write_text(_markdown(title, real, generated, table, params, condition,
                                                   figures))
        out.mkdir(exist_ok=True)
        for file in sorted(build.iterdir(), key=lambda f: f.name == "report.md"):
            os.replace(file, out / file.name)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return out / "report.md"


def _jsonable(v):
    """Plain JSON types: NaN -> null, numpy scalars and arrays -> Python."""
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple | np.ndarray):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _figures(out: Path, real: AnnData, generated: AnnData, table: pd.DataFrame, condition,
             seed: int) -> dict[str, str]:
    """Draw the report's figures with scdiff.pl; name -> file name, for the ones drawn."""
    from scdiff import pl

    keys = condition_keys(condition)
    drawn = {}
    pl.compare(real, generated, color=keys or None, seed=seed, show=False, save=out / "umap.png")
    drawn["UMAP of real and generated cells"] = "umap.png"
    pl.mean_scatter(real, generated, condition=keys or None, show=False,
                    save=out / "mean_scatter.png")
    drawn["Mean expression per gene, real vs generated"] = "mean_scatter.png"
    n_groups = len(set(group_labels(real, keys, "real").tolist())) if keys else 1
    if n_groups >= 2:
        pl.marker_dotplot(real, generated, condition=keys, show=False,
                          save=out / "marker_dotplot.png")
        drawn["Marker genes of each condition, real and generated"] = "marker_dotplot.png"
    if (table["group"] == OVERALL).any():
        pl.metric_bars(table, show=False, save=out / "metric_bars.png")
        drawn["Each metric beside its floor (all cells)"] = "metric_bars.png"
    return drawn


def _fmt(v) -> str:
    if isinstance(v, float | np.floating):
        return "–" if not np.isfinite(v) else f"{v:.3g}"
    return str(v)


def _markdown(title: str, real: AnnData, generated: AnnData, table: pd.DataFrame, params: dict,
              condition, figures: dict[str, str]) -> str:
    keys = condition_keys(condition)
    overall = table[table["group"] == OVERALL]
    lines = [f"# {title}", "",
             f"- Real cells: {real.n_obs:,}; generated cells: {generated.n_obs:,}; "
             f"genes: {real.n_vars:,}.",
             f"- Conditions compared: "
             f"{', '.join(keys) if keys else 'none (all cells as one group)'}."]
    if params:
        lines += [f"- Floor: {params.get('floor', '?')} (same sample sizes as the scored "
                  f"comparison).",
                  f"- Cap: groups larger than {params.get('max_cells', '?'):,} cells were "
                  f"subsampled (seed {params.get('seed', '?')})"
                  + (f"; capped: {', '.join(params['capped_groups'])}."
                     if params.get("capped_groups") else "; no group reached it."),
                  f"- PCA: {params.get('n_pcs', '?')} components fitted on the reference real "
                  f"cells; top {params.get('k_markers', '?')} marker genes per condition."]
        if params.get("skipped_groups"):
            lines.append(f"- Skipped (fewer than 5 cells): {'; '.join(params['skipped_groups'])}.")
    if table.get("flagged", pd.Series(dtype=bool)).astype(bool).any():
        lines += ["", "**Warning: generated cells look like copies of training cells** "
                  "(see copy_fraction below)."]
    lines += ["", "## How to read this", "", _HOW_TO_READ, "",
              "## Scores on all cells", "",
              "| metric | what it measures | generated | floor | ratio | better |",
              "|---|---|---|---|---|---|"]
    for _, r in overall.iterrows():
        info = METRICS.get(r["metric"])
        lines.append(f"| {r['metric']} | {info.text if info else ''} | {_fmt(r['value'])} | "
                     f"{_fmt(r['floor'])} | {_fmt(r['ratio'])} | {r['better']} |")
    per_group = table[table["group"] != OVERALL]
    if per_group["group"].nunique() > 1:
        wide = per_group.pivot_table(index="group", columns="metric", values="ratio",
                                     sort=False, dropna=False)
        wide = wide[[m for m in METRICS if m in wide.columns]]
        lines += ["", "## Ratio to the floor, per condition", "",
                  "1 = as good as real data; larger is worse.", "",
                  "| condition | " + " | ".join(wide.columns) + " |",
                  "|---" * (len(wide.columns) + 1) + "|"]
        for g, r in wide.iterrows():
            lines.append(f"| {g} | " + " | ".join(_fmt(v) for v in r) + " |")
    lines += ["", "## Figures", ""]
    for caption, name in figures.items():
        lines += [f"### {caption}", "", f"![{caption}]({name})", ""]
    lines += ["Full tables: `metrics.csv`, `metrics.json`.", ""]
    return "\n".join(lines)


def write_table_report(out_dir: str | Path, table: pd.DataFrame, *, overwrite: bool = False) -> Path:
    """Write ``report.md``, ``metrics.json`` and ``metrics.csv`` of a table's scores
    (:func:`scdiff.evaluate_table`) to ``out_dir``; returns the path of ``report.md``."""
    from scdiff.metrics import TABLE_METRICS

    out = check_out_dir(out_dir, overwrite=overwrite, name="out_dir")
    out.mkdir(parents=True, exist_ok=True)
    frame = table.rename_axis("metric").reset_index()
    frame["better"] = [TABLE_METRICS.get(m, "") for m in frame["metric"]]
    frame.to_csv(out / "metrics.csv", index=False)
    (out / "metrics.json").write_text(json.dumps(
        {"target": table.attrs.get("target"), "metrics": frame.to_dict(orient="records")}, indent=2))
    lines = ["# scdiff evaluation of a table", "",
             "Each score beside its **floor**: the real training rows scored as if they were "
             "generated. `ml_efficacy` predicts "
             f"`{table.attrs.get('target')}` on the held-out rows; `dcr` below the floor's means "
             "rows closer to training rows than real held-out rows are.", "",
             "| metric | generated | floor | better |", "|---|---|---|---|"]
    lines += [f"| {r.metric} | {r.generated:.4g} | {r.floor:.4g} | {r.better} |"
              for r in frame.itertuples()]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
