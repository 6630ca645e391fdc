"""Guidance weights with and without the guard: values out of the data's range, and fidelity.

For each data set and training seed, scdiff (defaults) is trained once on the training
split; cells like the held-out split are then generated at each guidance weight, with the
predicted clean cell clipped to each gene's training range at every step (``clip=True``)
and without (``clip=False``), and scored against the held-out cells (floor: the training
cells). Reported per weight and guard, mean over seeds:

- ``above_max``: fraction of values above the gene's largest training value;
- ``above_1e4``: fraction above log1p(1e4) = 9.21, a value no cell can hold (one gene
  holding every read of the cell);
- ``max``: the largest generated value; then MMD, energy, kNN AUC and marker overlap.

Run from the repository root (about 8 minutes on 2 CPU cores)::

    .venv/bin/python -m bench.guidance --datasets pbmc,simulated --seeds 0,1
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd

import scdiff
from bench.fidelity import load

WEIGHTS = (1.0, 2.0, 3.0, 5.0, 10.0)
SCORES = ("mmd", "energy", "knn_auc", "marker_overlap")


def one_seed(name: str, seed: int) -> list[dict]:
    train, test, options = load(name)
    model = scdiff.ConditionalDiffusion(train, condition=options["condition"], dose=options.get("dose"))
    model.train(seed=seed, progress=False)
    real_train, real_test = _log_view(model, train), _log_view(model, test)
    top = np.asarray(model.preprocessor.max)
    rows = []
    for weight in WEIGHTS:
        for clip in (False, True):
            fake = model.sample(like=test.obs, guidance=weight, clip=clip, seed=seed)
            X = np.asarray(fake.X)
            table = scdiff.evaluate(real_test, fake, condition=options["condition"], train=real_train,
                                    seed=seed)
            overall = table[table["group"] == "overall"].set_index("metric")["value"]
            rows.append({"data": name, "seed": seed, "guidance": weight, "clip": clip,
                         "above_max": float((X > top + 1e-4).mean()),
                         "above_1e4": float((X > np.log1p(1e4)).mean()), "max": float(X.max()),
                         **{s: float(overall[s]) for s in SCORES}})
    return rows


def _log_view(model, adata):
    import anndata as ad

    X = model.preprocessor.log_expression(adata)
    return ad.AnnData(X=X, obs=adata.obs.copy(), var=pd.DataFrame(index=model.genes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="pbmc,simulated")
    parser.add_argument("--seeds", default="0,1")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    rows = []
    for name in args.datasets.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            start = time.perf_counter()
            rows += one_seed(name, seed)
            print(f"{name} seed {seed}: {time.perf_counter() - start:.0f} s", flush=True)
    frame = pd.DataFrame(rows)
    mean = frame.groupby(["data", "guidance", "clip"], sort=False).mean(numeric_only=True)
    mean = mean.drop(columns="seed").reset_index()
    print(_markdown(mean))


def _markdown(frame: pd.DataFrame) -> str:
    cols = ["data", "guidance", "clip", "above_max", "above_1e4", "max", *SCORES]
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in frame[cols].itertuples(index=False):
        out.append("| " + " | ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in row) + " |")
    return "\n".join(out)


if __name__ == "__main__":
    main()
