"""Issue 21's benchmark: scdiff's tabular mode against SDV's Gaussian copula, CTGAN and a
per-condition Gaussian, on four tables of different shapes, with the real-vs-real floor.

Each table is split 70/30 (stratified by its condition, ``random_state=0``). For each
seed, every generator is fitted on the training split with its authors' defaults and
asked for as many rows as the training split holds (scdiff and the Gaussian: as many of
each condition; SDV's: in its learned proportions, which its conditional sampling scored
lower with); the rows are scored by :func:`scdiff.evaluate_table` against the held-out
split, beside the floor: the training split itself scored as if generated, the same
number of rows (and what ML efficacy compares with, TabDDPM's protocol). Tables:

- ``wine``: scikit-learn's wine (178 x 13 measurements, 3 cultivars);
- ``breast_cancer``: scikit-learn's breast cancer (569 x 30 skewed measurements, 2 classes);
- ``digits``: scikit-learn's digits (1,797 x 64 integer pixels 0-16, 10 digits);
- ``clinical``: :func:`scdiff.datasets.simulate_clinical` (3,000 x 11 mixed columns:
  text, ordered and pandas categories, integers, negatives, booleans, missing values;
  3 subtypes).

The targets (on the mean over seeds): detection AUC, column shapes and pair trends
closer to the floor than both SDV's Gaussian copula and CTGAN; ML efficacy (a random
forest predicting the condition) within 0.02 of train-on-real; the closest-record distance
no smaller than the held-out real rows' (no copying).

Needs the benchmark extra (``pip install sdv``). Run from the repository root::

    .venv/bin/python -m bench.tabular --seeds 0,1,2                   # every table, ~40 min on 2 cores
    .venv/bin/python -m bench.tabular --tables wine --generators scdiff --seeds 0
    .venv/bin/python -m bench.tabular --generators scdiff --train '{"epochs": 200}' --tag _e200
    .venv/bin/python -m bench.tabular --tables clinical --generators scdiff --train '{"categories": "sample"}'
    .venv/bin/python -m bench.tabular --generators scdiff --sample '{"guidance": 1.5}' --tag _g15
    .venv/bin/python -m bench.tabular --generators copula_conditional,ctgan_conditional --tag _sdvc

    .venv/bin/python -m bench.tabular --summarise _s26                # the saved results

Writes ``bench/results/tabular<tag>.csv`` (one row per table, generator, seed, metric).
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.datasets import load_breast_cancer, load_digits, load_wine
from sklearn.model_selection import train_test_split

import scdiff
from scdiff.datasets import simulate_clinical
from scdiff.metrics import TABLE_METRICS, evaluate_table

RESULTS = Path(__file__).resolve().parent / "results"
TABLES = ("wine", "breast_cancer", "digits", "clinical")
GENERATORS = ("scdiff", "gaussian", "copula", "ctgan")
#: Variants measured on request (``--generators``): SDV's conditional sampling.
VARIANTS = ("copula_conditional", "ctgan_conditional")
#: The baselines the targets compare against.
SDV = ("copula", "ctgan")


def load(name: str) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """(training split, held-out split, condition column) of a table."""
    if name == "clinical":
        table, cond = simulate_clinical(n_rows=3000, seed=0), "subtype"
    else:
        loader = {"wine": load_wine, "breast_cancer": load_breast_cancer, "digits": load_digits}[name]
        raw = loader(as_frame=True)
        table = raw.data.copy()
        if name == "digits":
            table = table.astype(np.int64)
        cond = {"wine": "cultivar", "breast_cancer": "diagnosis", "digits": "digit"}[name]
        names = raw.target_names if name != "digits" else [str(i) for i in range(10)]
        table[cond] = [str(names[i]) for i in raw.target]
    train, test = train_test_split(table, test_size=0.3, stratify=table[cond], random_state=0)
    return train.reset_index(drop=True), test.reset_index(drop=True), cond


def gaussian(train: pd.DataFrame, counts: pd.Series, cond: str, seed: int) -> pd.DataFrame:
    """Per condition: a multivariate Gaussian of the numeric columns (integers rounded,
    values kept in the training range, missing values at the training rate) and each other
    column drawn from its frequencies."""
    rng = np.random.default_rng(seed)
    parts = []
    for value, k in counts.items():
        rows = train[train[cond] == value]
        out = {cond: [value] * k}
        numeric = [c for c in train.columns if c != cond and pd.api.types.is_numeric_dtype(train[c])
                   and not pd.api.types.is_bool_dtype(train[c])]
        x = rows[numeric].astype(float)
        filled = x.fillna(x.median())
        cov = np.cov(filled.to_numpy(), rowvar=False) if len(numeric) > 1 else np.var(filled.to_numpy())
        draw = rng.multivariate_normal(filled.mean().to_numpy(), np.atleast_2d(cov), size=k)
        for j, c in enumerate(numeric):
            v = np.clip(draw[:, j], train[c].min(), train[c].max())
            if np.all(np.mod(train[c].dropna(), 1) == 0):
                v = np.round(v)
            v[rng.random(k) < x[c].isna().mean()] = np.nan
            out[c] = v.astype(train[c].dtype) if not np.isnan(v).any() else v
        for c in train.columns:
            if c not in out:
                freq = rows[c].value_counts(normalize=True, dropna=False)
                out[c] = pd.Series(freq.index[rng.choice(len(freq), size=k, p=freq.to_numpy())],
                                   dtype=train[c].dtype).to_numpy()
        parts.append(pd.DataFrame(out)[list(train.columns)])
    return pd.concat(parts, ignore_index=True)


def sdv_sample(kind: str, train: pd.DataFrame, counts: pd.Series, cond: str, seed: int) -> pd.DataFrame:
    """SDV's GaussianCopulaSynthesizer or CTGANSynthesizer with their defaults, as many rows
    as ``counts`` asks for in all."""
    from sdv.metadata import Metadata
    from sdv.single_table import CTGANSynthesizer, GaussianCopulaSynthesizer

    meta = Metadata.detect_from_dataframes({"table": train}, infer_keys=None)
    meta.update_column(cond, sdtype="categorical", table_name="table")
    np.random.seed(seed)  # noqa: NPY002 (SDV and CTGAN draw from the global generators)
    torch.manual_seed(seed)
    model = (GaussianCopulaSynthesizer if kind.startswith("copula") else CTGANSynthesizer)(meta)
    categories = {c: train[c].dtype for c in train.columns
                  if isinstance(train[c].dtype, pd.CategoricalDtype)}
    if kind.startswith("ctgan"):  # CTGAN refuses pandas categories ("cast these columns to an 'object'")
        train = train.astype({c: object for c in categories})
    model.fit({"table": train})  # SDV 2 takes tables by name, even one
    # unconditional rows, as many as asked in all (the stratified split holds each condition in
    # the training proportions): SDV's conditional sampling scored lower on every score
    # (docs/tabular.md), so the baselines get their better path
    if kind.endswith("_conditional"):  # the variant: as many rows of each condition as asked
        from sdv.sampling import Condition

        out = model.sample_from_conditions([Condition({cond: v}, num_rows=int(k))
                                            for v, k in counts.items()])
    else:
        out = model.sample(int(counts.sum()))
    out = (out["table"] if isinstance(out, dict) else out).reset_index(drop=True)
    return out.astype(categories) if kind.startswith("ctgan") else out


def generate(kind: str, train: pd.DataFrame, cond: str, seed: int,
             options: dict | None = None, sampling: dict | None = None) -> pd.DataFrame:
    """As many rows of each condition as the training split holds (the floor's size)."""
    counts = train[cond].value_counts().sort_index()
    if kind == "scdiff":
        options = dict(options or {})
        draw = options.pop("categories", "argmax") == "sample"
        model = scdiff.ConditionalDiffusion(train, condition=cond)
        model.train(seed=seed, progress=False, **options)
        if draw:  # the variant: categories drawn from each one-hot block, not its argmax
            decode, rng = model.parts.table.decode, np.random.default_rng(seed)
            model.parts.table.decode = lambda x, conditions: decode(x, conditions, rng=rng)
        return model.sample(like=train[[cond]], seed=seed, **(sampling or {}))
    if kind == "truth":  # fresh rows of the simulator: what a perfect generator would give
        fresh = simulate_clinical(n_rows=20 * len(train), seed=1000 + seed)
        return pd.concat([fresh[fresh[cond] == v].iloc[:k] for v, k in counts.items()],
                         ignore_index=True)
    if kind == "gaussian":
        return gaussian(train, counts, cond, seed)
    return sdv_sample(kind, train, counts, cond, seed)


def save(rows: list[dict], tag: str) -> pd.DataFrame:
    """The rows measured so far under ``tag``, merged with those saved before (a row of the
    same table, generator and seed is replaced)."""
    frame = pd.DataFrame(rows)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"tabular{tag}.csv"
    if path.exists():  # runs of other tables or generators under the same tag add up
        old = pd.read_csv(path)
        keys = ["table", "generator", "seed"]
        old = old.merge(frame[keys].drop_duplicates(), on=keys, how="left", indicator=True)
        frame = pd.concat([old[old["_merge"] == "left_only"].drop(columns="_merge"), frame])
    frame.to_csv(path, index=False)
    return frame


def run(tables, generators, seeds, tag: str, options: dict | None = None,
        sampling: dict | None = None) -> pd.DataFrame:
    rows: list[dict] = []
    frame = pd.DataFrame()
    for name in tables:
        train, test, cond = load(name)
        for seed in seeds:
            for kind in ("floor", *generators, *(["truth"] if name == "clinical" else [])):
                start = time.perf_counter()
                fake = train if kind == "floor" else generate(kind, train, cond, seed, options, sampling)
                seconds = time.perf_counter() - start
                scores = evaluate_table(test, fake, train=train, target=cond, seed=seed)
                column = "floor" if kind == "floor" else "generated"
                for metric, value in scores[column].items():
                    rows.append({"table": name, "generator": kind, "seed": seed, "metric": metric,
                                 "value": float(value)})
                rows.append({"table": name, "generator": kind, "seed": seed, "metric": "seconds",
                             "value": seconds})
                print(f"{name} seed {seed} {kind}: " + ", ".join(
                    f"{m} {v:.3f}" for m, v in scores[column].items()) + f" ({seconds:.0f} s)",
                    flush=True)
                frame = save(rows, tag)  # after each generator: a crash keeps what was measured
    return frame


def dcr_noise(name: str, seeds: int = 200) -> float:
    """The floor's closest-record distance noise: the standard deviation of the held-out
    rows' median distance to their closest training row over bootstrap resamples of them."""
    from scdiff.data import TableCodec
    from scdiff.metrics._memorisation import nearest_distance
    from scdiff.metrics._tabular import _distance_space

    train, test, _ = load(name)
    scale = _distance_space(TableCodec.fit(train), train)
    d = nearest_distance(scale(test), scale(train))
    rng = np.random.default_rng(0)
    return float(np.std([np.median(rng.choice(d, len(d))) for _ in range(seeds)]))


def efficacy_noise(name: str, seeds: int = 20) -> float:
    """The spread of train-on-real from the training sample alone: the standard deviation
    of ML efficacy over forests trained on bootstrap resamples of the training split (each
    row drawn with replacement), scored on the same held-out rows."""
    from scdiff.data import TableCodec
    from scdiff.metrics._tabular import _efficacy

    train, test, cond = load(name)
    codec = TableCodec.fit(train, [cond])
    rng = np.random.default_rng(0)
    scores = [_efficacy(train.iloc[rng.integers(0, len(train), len(train))], test, cond, codec, True, i)
              for i in range(seeds)]
    return float(np.std(scores))


def targets(means: pd.DataFrame, noise: float = 0.0, ml_noise: float = 0.0) -> dict[str, bool]:
    """Issue 21's targets for scdiff on one table (``means``: generator x metric)."""
    s, floor = means.loc["scdiff"], means.loc["floor"]
    sdv = [g for g in SDV if g in means.index]

    def closer(metric: str) -> bool:
        gap = abs(s[metric] - floor[metric])
        return all(gap < abs(means.loc[g, metric] - floor[metric]) for g in sdv)

    return {"detection_auc": closer("detection_auc"), "column_shapes": closer("column_shapes"),
            "pair_trends": closer("pair_trends"),
            "ml_efficacy": bool(s["ml_efficacy"] >= floor["ml_efficacy"] - 0.02),
            "ml_efficacy_within_noise": bool(
                s["ml_efficacy"] >= floor["ml_efficacy"] - max(0.02, 2 * ml_noise)),
            "dcr": bool(s["dcr"] >= floor["dcr"]),
            "dcr_within_noise": bool(s["dcr"] >= floor["dcr"] - 2 * noise)}


def summarise(frame: pd.DataFrame) -> str:
    lines = []
    order = ["floor", *[g for g in (*GENERATORS, *VARIANTS, "truth") if g in set(frame.generator)]]
    for name in [t for t in TABLES if t in set(frame.table)]:
        part = frame[frame.table == name]
        seeds = sorted(part.seed.unique())
        mean = part.pivot_table(index="generator", columns="metric", values="value", aggfunc="mean")
        sd = part.pivot_table(index="generator", columns="metric", values="value", aggfunc="std")
        metrics = [*TABLE_METRICS, "seconds"]
        lines += [f"\n### {name} (seeds {', '.join(map(str, seeds))}; mean, sd over seeds)\n",
                  "| generator | " + " | ".join(metrics) + " |",
                  "|---" * (len(metrics) + 1) + "|"]
        for g in [g for g in order if g in mean.index]:
            cells = [f"{mean.loc[g, m]:.3f}" + (f" ± {sd.loc[g, m]:.3f}" if len(seeds) > 1 else "")
                     for m in metrics]
            lines.append(f"| {g} | " + " | ".join(cells) + " |")
        noise, ml_noise = dcr_noise(name), efficacy_noise(name)
        lines.append(f"\nnoise: the floor's dcr {noise:.4f} (bootstrap sd of the held-out rows' median), "
                     f"train-on-real ML efficacy {ml_noise:.4f} (sd over bootstrap training sets)")
        if "scdiff" in mean.index:
            met = targets(mean, noise, ml_noise)
            strict = {k: v for k, v in met.items() if not k.endswith("within_noise")}
            lines.append(f"\ntargets met: {sum(strict.values())} of {len(strict)} ("
                         + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in met.items()) + ")")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tables", default=",".join(TABLES))
    parser.add_argument("--generators", default=",".join(GENERATORS))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--tag", default="")
    parser.add_argument("--train", default="{}", metavar="JSON",
                        help='scdiff training options, e.g. \'{"epochs": 200}\' (a variant); '
                             '"categories": "sample" draws categories from the one-hot blocks.')
    parser.add_argument("--sample", default="{}", metavar="JSON",
                        help='scdiff sampling options, e.g. \'{"guidance": 1.5}\' (a variant).')
    parser.add_argument("--summarise", metavar="TAG", default=None,
                        help="Print the tables of a saved run instead of running.")
    args = parser.parse_args()
    if args.summarise is not None:
        print(summarise(pd.read_csv(RESULTS / f"tabular{args.summarise}.csv")))
        return
    warnings.filterwarnings("ignore")
    frame = run(args.tables.split(","), args.generators.split(","),
                [int(s) for s in args.seeds.split(",")], args.tag, json.loads(args.train),
                json.loads(args.sample))
    print(summarise(frame))
    print(json.dumps({"tag": args.tag, "rows": len(frame)}))


if __name__ == "__main__":
    main()
