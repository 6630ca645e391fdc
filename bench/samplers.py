"""Fidelity against the number of sampling steps, for each sampler and objective.

For each data set, training seed and objective (the default diffusion: cosine schedule,
v-prediction; or the rectified flow, ``schedule="flow"``), scdiff is trained once with its
defaults; cells like the held-out split are then generated with DDIM, DPM-Solver++(2M) and
UniPC at 5, 10, 20 and 50 steps and scored against the held-out cells (floor: the
training cells). Printed: the scores per setting, mean over seeds, marked where worse
than DDIM-50's worst seed, and DDIM-50's seed range: the yardstick "within the seed
spread of DDIM-50" is read against.

Run from the repository root (about an hour on 2 CPU cores)::

    .venv/bin/python -m bench.samplers --datasets pbmc,wide,simulated --seeds 0,1,2,3
"""

from __future__ import annotations

import argparse
import time
import warnings

import anndata as ad
import pandas as pd

import scdiff
from bench.fidelity import load

SCORES = ("mmd", "energy", "knn_auc", "var_pearson", "marker_overlap", "mean_pearson")
SETTINGS = [(sampler, steps) for sampler in ("ddim", "dpm++", "unipc") for steps in (5, 10, 20, 50)]
#: Scores where lower is better (the others: higher is better).
LOWER = ("mmd", "energy", "knn_auc")


def _log_view(model, adata):
    X = model.preprocessor.log_expression(adata)
    return ad.AnnData(X=X, obs=adata.obs.copy(), var=pd.DataFrame(index=model.genes))


def one(name: str, seed: int, schedule: str, settings: list[tuple[str, int]]) -> list[dict]:
    train, test, options = load(name)
    model = scdiff.ConditionalDiffusion(train, condition=options["condition"], dose=options.get("dose"),
                                        schedule=schedule)
    start = time.perf_counter()
    model.train(seed=seed, progress=False)
    took = time.perf_counter() - start
    real_train, real_test = _log_view(model, train), _log_view(model, test)
    rows = []
    for sampler, steps in settings:
        fake = model.sample(like=test.obs, sampler=sampler, steps=steps, seed=seed)
        table = scdiff.evaluate(real_test, fake, condition=options["condition"], train=real_train,
                                seed=seed)
        overall = table[table["group"] == "overall"].set_index("metric")["value"]
        rows.append({"data": name, "objective": "flow" if schedule == "flow" else "diffusion",
                     "seed": seed, "sampler": sampler, "steps": steps, "train_s": took,
                     **{s: float(overall[s]) for s in SCORES}})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="pbmc,wide,simulated")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--schedules", default="cosine,flow")
    parser.add_argument("--settings", default="",
                        help="sampler:steps,... (default: ddim, dpm++ and unipc at 5, 10, 20, 50)")
    parser.add_argument("--out", default="bench/results/samplers.csv")
    args = parser.parse_args()
    settings = ([(p.split(":")[0], int(p.split(":")[1])) for p in args.settings.split(",")]
                if args.settings else SETTINGS)
    warnings.simplefilter("ignore")
    rows = []
    for name in args.datasets.split(","):
        for schedule in args.schedules.split(","):
            for seed in (int(s) for s in args.seeds.split(",")):
                rows += one(name, seed, schedule, settings)
                print(f"{name} {schedule} seed {seed}: trained in {rows[-1]['train_s']:.0f} s", flush=True)
                pd.DataFrame(rows).to_csv(args.out, index=False)
    print(summary(pd.DataFrame(rows)))


def summary(frame: pd.DataFrame) -> str:
    """Markdown: mean over seeds per setting, each marked where it is worse than DDIM-50's
    worst seed (the default diffusion), and DDIM-50's seed range per data set."""
    keys = ["data", "objective", "sampler", "steps"]
    mean = frame.groupby(keys, sort=False)[list(SCORES)].mean().reset_index()
    ref = frame[(frame.objective == "diffusion") & (frame.sampler == "ddim") & (frame.steps == 50)]
    worst = {data: {k: (g[k].max() if k in LOWER else g[k].min()) for k in SCORES}
             for data, g in ref.groupby("data")}
    lines = ["| " + " | ".join([*keys, *SCORES]) + " |", "|" + "---|" * (len(keys) + len(SCORES))]
    for row in mean.to_dict("records"):
        cells = [str(row[k]) for k in keys]
        for k in SCORES:
            out = row["data"] in worst and (row[k] > worst[row["data"]][k] if k in LOWER
                                             else row[k] < worst[row["data"]][k])
            cells.append(f"{row[k]:.4g}" + (" *" if out else ""))
        lines.append("| " + " | ".join(cells) + " |")
    spread = ref.groupby("data")[list(SCORES)].agg(lambda v: v.max() - v.min())
    lines += ["", "`*`: worse than DDIM-50's worst seed. DDIM-50 (diffusion) seed range:", "",
              "| data | " + " | ".join(SCORES) + " |", "|" + "---|" * (len(SCORES) + 1)]
    for data, row in spread.iterrows():
        lines.append(f"| {data} | " + " | ".join(f"{v:.4g}" for v in row) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
