"""Issue 2's acceptance figures: per-type mean correlation of 500 generated cells vs the floor.

For each pbmc cell type with at least 10 held-out cells, the Pearson correlation of the
generated cells' per-gene means with the held-out real means, beside the same for the
real training cells (the floor). Run from the repository root:
`.venv/bin/python bench/pbmc_fidelity.py`.
"""

from __future__ import annotations

import time
import warnings

import anndata as ad
import numpy as np
import torch

import scdiff


def dense(a: ad.AnnData) -> np.ndarray:
    return a.X.toarray() if hasattr(a.X, "toarray") else np.asarray(a.X)


def per_type_scores(model: scdiff.ConditionalDiffusion, train: ad.AnnData, test: ad.AnnData,
                    *, n_cells: int = 500, min_cells: int = 10) -> list[tuple[str, int, float, float]]:
    """(cell type, held-out cells, generated-vs-held-out r, train-vs-held-out r) per type."""
    rows = []
    for ct in test.obs.cell_type.cat.categories:
        real = test[test.obs.cell_type == ct]
        if real.n_obs < min_cells:
            continue
        fake = model.sample(n_cells, condition={"cell_type": ct})
        real_mean = dense(real).mean(0)
        floor = np.corrcoef(dense(train[train.obs.cell_type == ct]).mean(0), real_mean)[0, 1]
        rows.append((ct, real.n_obs, float(np.corrcoef(fake.X.mean(0), real_mean)[0, 1]), float(floor)))
    return rows


def main() -> None:
    warnings.filterwarnings("ignore")
    torch.set_num_threads(2)
    train = ad.read_h5ad("data_examples/pbmc_train.h5ad")
    test = ad.read_h5ad("data_examples/pbmc_test.h5ad")
    t0 = time.time()
    model = scdiff.ConditionalDiffusion(train, condition="cell_type").train(progress=False)
    print(f"train {time.time() - t0:.0f}s, {model.train_config.steps} steps")
    print("| cell type | held-out cells | generated vs held-out | train vs held-out (floor) | difference |")
    print("|---|---|---|---|---|")
    for ct, n, score, floor in per_type_scores(model, train, test):
        print(f"| {ct} | {n} | {score:.4f} | {floor:.4f} | {score - floor:+.4f} |")


if __name__ == "__main__":
    main()
