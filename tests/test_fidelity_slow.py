"""Issue 2's acceptance check on the bundled pbmc example (slow: ~2 minutes; run with -m slow)."""

from pathlib import Path

import anndata as ad
import numpy as np
import pytest

import scdiff

DATA = Path(__file__).resolve().parents[1] / "data_examples"


@pytest.mark.slow
def test_pbmc_generated_means_reach_the_train_floor():
    train, test = ad.read_h5ad(DATA / "pbmc_train.h5ad"), ad.read_h5ad(DATA / "pbmc_test.h5ad")
    model = scdiff.ConditionalDiffusion(train, condition="cell_type").train(progress=False)
    dense = lambda a: a.X.toarray() if hasattr(a.X, "toarray") else np.asarray(a.X)  # noqa: E731
    for ct in test.obs.cell_type.cat.categories:
        real = test[test.obs.cell_type == ct]
        if real.n_obs < 10:
            continue
        fake = model.sample(500, condition={"cell_type": ct})
        real_mean = dense(real).mean(0)
        floor = np.corrcoef(dense(train[train.obs.cell_type == ct]).mean(0), real_mean)[0, 1]
        score = np.corrcoef(fake.X.mean(0), real_mean)[0, 1]
        assert score >= floor - 0.01, (ct, score, floor)
