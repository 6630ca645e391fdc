"""Issue 4's fidelity targets on four data sets: the floor, the baseline and scdiff.

For each data set, ``scdiff.benchmark`` (defaults) trains on the training split,
generates cells like the held-out split and scores scdiff, the per-condition Gaussian
in PCA space and a resample of the training cells against the held-out cells, with
the real-vs-real floor (training cells scored as if generated). The targets:

- MMD, energy distance, kNN AUC, variance correlation, marker overlap: scdiff's
  distance to the floor is at most a third of the best baseline's;
- label accuracy at least the floor's (a classifier's accuracy on real held-out cells);
- mean correlation at least the Gaussian's.

Data sets (all in ``data_examples/`` or made on the fly):

- ``pbmc``: PBMC 68k reduced, 490/210 cells x 765 genes, 10 cell types;
- ``simulated``: the dose-response simulator, cell type x drug with dose, scored on the
  held-out cells of measured conditions (``holdout == "iid"``);
- ``wide``: 559 real immune cells x 9,810 genes (celltypist's sample), 8 clusters,
  391 training cells, 2,000 modelled genes, as few as 7 training cells in a cluster;
- ``wine``: scikit-learn's wine table (log1p of the 13 measurements), 3 cultivars.

Run from the repository root::

    .venv/bin/python -m bench.fidelity                     # all four, seed 0
    .venv/bin/python -m bench.fidelity --datasets pbmc --seeds 0,1
    .venv/bin/python -m bench.fidelity --model '{"width": 512}'   # a variant
    .venv/bin/python -m bench.fidelity --datasets simulated --seeds 0,1 --oracle  # + the truth

Prints one markdown table per data set and writes ``bench/results/fidelity.csv``.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import torch

from scdiff._benchmark import benchmark, markdown_table
from scdiff.metrics import METRICS

DATA = Path(__file__).resolve().parent.parent / "data_examples"
#: metric -> the target's kind: "third" (a third of the best baseline's distance to the
#: floor), "floor" (at least the floor) or "gaussian" (at least the Gaussian's).
TARGETS = {"mmd": "third", "energy": "third", "knn_auc": "third", "var_pearson": "third",
           "marker_overlap": "third", "label_accuracy": "floor", "mean_pearson": "gaussian"}
BASELINES = ["gaussian_pca"]


def load(name: str) -> tuple[ad.AnnData, ad.AnnData, dict]:
    """(train, test, benchmark options) of one data set."""
    if name == "pbmc":
        return (ad.read_h5ad(DATA / "pbmc_train.h5ad"), ad.read_h5ad(DATA / "pbmc_test.h5ad"),
                {"condition": "cell_type"})
    if name == "simulated":
        test = ad.read_h5ad(DATA / "simulated_test.h5ad")
        return (ad.read_h5ad(DATA / "simulated_train.h5ad"), test[test.obs["holdout"] == "iid"].copy(),
                {"condition": ["cell_type", "drug"], "dose": "dose"})
    if name == "wide":
        return (ad.read_h5ad(DATA / "immune_wide_train.h5ad"), ad.read_h5ad(DATA / "immune_wide_test.h5ad"),
                {"condition": "cluster"})
    if name == "wine":
        from sklearn.datasets import load_wine
        from sklearn.model_selection import train_test_split

        wine = load_wine(as_frame=True)
        x = np.log1p(wine.data.to_numpy(np.float32))
        obs = pd.DataFrame({"cultivar": pd.Categorical([f"cultivar_{i}" for i in wine.target])},
                           index=[f"wine_{i}" for i in range(len(x))])
        full = ad.AnnData(x, obs=obs, var=pd.DataFrame(index=list(wine.data.columns)))
        tr, te = train_test_split(full.obs_names.to_numpy(), test_size=0.3,
                                  stratify=obs["cultivar"].to_numpy(), random_state=0)
        return full[tr].copy(), full[te].copy(), {"condition": "cultivar"}
    raise SystemExit(f"unknown data set {name!r}: use pbmc, simulated, wide or wine.")


def distance(metric: str, value: float) -> float:
    return abs(value - METRICS[metric].ideal)


def gap(metric: str, value: float, floor: float) -> float:
    """``value``'s distance to the ideal beyond the floor's; beating the floor counts as 0."""
    return max(0.0, distance(metric, value) - distance(metric, floor))


def check(table: pd.DataFrame, column: str = "scdiff") -> pd.DataFrame:
    """One row per target metric: floor, baseline(s), ``column``, the bound and whether it holds."""
    rows = []
    for metric, kind in TARGETS.items():
        if metric not in table.index:
            continue
        floor, got = float(table.loc[metric, "floor"]), float(table.loc[metric, column])
        base = {b: float(table.loc[metric, b]) for b in BASELINES if b in table.columns}
        if kind == "third":
            best, ours = min(gap(metric, v, floor) for v in base.values()), gap(metric, got, floor)
            bound = f"gap <= {best / 3:.4g}"
            ok = ours <= best / 3
            shown = f"gap {ours:.4g} = {ours / best:.2f} x baseline's" if best else f"gap {ours:.4g}"
        elif kind == "floor":
            ok, bound, shown = got >= floor - 1e-9, f">= {floor:.4g}", ""
        else:
            ok, bound, shown = got >= base["gaussian_pca"] - 1e-9, f">= {base['gaussian_pca']:.4g}", ""
        rows.append({"metric": metric, "floor": floor, **base, column: got,
                     "resample_train": float(table.loc[metric, "resample_train"]),
                     "target": bound, "detail": shown, "met": "yes" if ok else "no"})
    for metric in ("copy_fraction", "zero_frac_mae"):
        if metric in table.index:
            rows.append({"metric": metric, "floor": float(table.loc[metric, "floor"]),
                         **{b: float(table.loc[metric, b]) for b in BASELINES},
                         column: float(table.loc[metric, column]),
                         "resample_train": float(table.loc[metric, "resample_train"]),
                         "target": "(reported)", "detail": "", "met": ""})
    return pd.DataFrame(rows).set_index("metric")


def check_all(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`check` of scdiff, plus the truth's value and whether it meets each target
    where ``table`` has a ``truth`` column (what a perfect generator scores)."""
    checked = check(table)
    if "truth" in table.columns:
        truth = check(table, "truth")
        checked.insert(checked.columns.get_loc("scdiff") + 1, "truth", truth["truth"])
        checked["truth met"] = truth["met"]
    return checked


def run(name: str, seed: int, model_kw: dict, train_kw: dict, sample_kw: dict,
        oracle: bool = False) -> tuple[pd.DataFrame, float]:
    train, test, opts = load(name)
    start = time.perf_counter()
    table = benchmark(train, test, **opts, seed=seed, model_kwargs=model_kw,
                             train_kwargs=train_kw, sample_kwargs=sample_kw)
    took = time.perf_counter() - start
    if oracle and name == "simulated":
        table["truth"] = truth_column(train, test, opts["condition"], seed)
    return table, took


def truth_column(train: ad.AnnData, test: ad.AnnData, condition: list[str], seed: int) -> pd.Series:
    """The simulator's ground truth scored as a generator: what a perfect model scores.

    Fresh cells of the test split's conditions (``scdiff.datasets.sample_truth``), scored
    like every generator against the test cells with the training cells as the floor.
    """
    from scdiff.datasets import sample_truth
    from scdiff.metrics import benchmark_table, evaluate

    fresh = sample_truth(test, test, seed=10_000 + seed)  # the split keeps uns["simulation"]
    tables = {"truth": evaluate(test, fresh, condition=condition, train=train, seed=seed)}
    return benchmark_table(tables)["truth"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="pbmc,simulated,wide,wine")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--model", default="{}", help="JSON keyword arguments of ConditionalDiffusion")
    parser.add_argument("--train", default="{}", help="JSON keyword arguments of .train()")
    parser.add_argument("--sample", default="{}", help="JSON keyword arguments of .sample()")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--tag", default="", help="suffix of the CSV's name")
    parser.add_argument("--oracle", action="store_true",
                        help="also score the simulator's ground truth as a generator (column 'truth')")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(max(1, torch.get_num_threads()))
    model_kw, train_kw, sample_kw = json.loads(args.model), json.loads(args.train), json.loads(args.sample)
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    for name in args.datasets.split(","):
        tables, took = [], []
        for seed in [int(s) for s in args.seeds.split(",")]:
            table, seconds = run(name, seed, model_kw, train_kw, sample_kw, args.oracle)
            tables.append(table.drop(columns=["better"], errors="ignore").astype(float))
            took.append(seconds)
        mean = sum(tables) / len(tables)
        checked = check_all(mean)
        met = (checked["met"] == "yes").sum(), (checked["met"] != "").sum()
        print(f"\n### {name}: {met[0]} of {met[1]} targets met "
              f"(seeds {args.seeds}; {np.mean(took):.0f} s per benchmark, training included)\n")
        print(markdown_table(checked), end="", flush=True)
        results.append(checked.reset_index().assign(dataset=name, seconds=np.mean(took),
                                                    model=args.model, train=args.train,
                                                    sample=args.sample))
        pd.concat(results).to_csv(args.out / f"fidelity{args.tag}.csv", index=False)


if __name__ == "__main__":
    main()
