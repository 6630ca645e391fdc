"""Network size and training length against fidelity and memorisation on pbmc (issue 4).

Each configuration is trained with seeds 0 and 1 and scored by ``scdiff.evaluate`` against
the held-out cells with ``train=`` (so the copy check runs); the mean is printed.
Run from the repository root: ``.venv/bin/python bench/pbmc_capacity.py``.
"""

from __future__ import annotations

import time
import warnings

import anndata as ad
import torch

import scdiff
from scdiff._benchmark import _log_view

CONFIGS = [
    ("default (w256 d3, 2000 steps)", {}, {}),
    ("dropout 0.1", {"dropout": 0.1}, {}),
    ("1000 steps", {}, {"steps": 1000}),
    ("w512 d4, dropout 0.1", {"width": 512, "depth": 4, "dropout": 0.1}, {}),
    ("w512 d4, dropout 0.1, 1000 steps", {"width": 512, "depth": 4, "dropout": 0.1}, {"steps": 1000}),
]
METRICS = ["mmd", "energy", "knn_auc", "var_pearson", "mean_pearson", "marker_overlap", "copy_fraction"]


def main() -> None:
    warnings.filterwarnings("ignore")
    torch.set_num_threads(2)
    train = ad.read_h5ad("data_examples/pbmc_train.h5ad")
    test = ad.read_h5ad("data_examples/pbmc_test.h5ad")
    print("| configuration | " + " | ".join(METRICS) + " | s/run |")
    print("|---" * (len(METRICS) + 2) + "|")
    for name, model_kw, train_kw in CONFIGS:
        scores, start = [], time.time()
        for seed in (0, 1):
            model = scdiff.ConditionalDiffusion(train, condition="cell_type", **model_kw)
            model.train(progress=False, seed=seed, **train_kw)
            fake = model.sample(like=test.obs, seed=seed)
            table = scdiff.evaluate(_log_view(model, test), fake, condition="cell_type",
                                    train=_log_view(model, train), seed=0)
            scores.append(table[table.group == "overall"].set_index("metric")["value"])
        mean = sum(scores) / len(scores)
        cells = " | ".join(f"{mean[m]:.4g}" for m in METRICS)
        print(f"| {name} | {cells} | {(time.time() - start) / 2:.0f} |", flush=True)


if __name__ == "__main__":
    main()
