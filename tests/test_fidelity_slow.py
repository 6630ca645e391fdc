"""Issue 2's acceptance check on the bundled pbmc example (slow: ~1 minute; run with -m slow)."""

from pathlib import Path

import anndata as ad
import pytest

import scdiff
from bench.pbmc_fidelity import per_type_scores

DATA = Path(__file__).resolve().parents[1] / "data_examples"


@pytest.mark.slow
def test_pbmc_generated_means_reach_the_train_floor():
    train, test = ad.read_h5ad(DATA / "pbmc_train.h5ad"), ad.read_h5ad(DATA / "pbmc_test.h5ad")
    model = scdiff.ConditionalDiffusion(train, condition="cell_type").train(progress=False)
    rows = per_type_scores(model, train, test)
    assert len(rows) == 6  # the types with >= 10 held-out cells
    for ct, _, score, floor in rows:
        assert score >= floor - 0.01, (ct, score, floor)
