"""scdiff.metrics.baselines: shapes, obs categories, errors, and where they score."""

from __future__ import annotations

import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from scdiff import InputError
from scdiff.metrics import baselines, benchmark_table, evaluate


def make_train(sparse: bool = False) -> ad.AnnData:
    rng = np.random.default_rng(0)
    rates = rng.gamma(2.0, 1.0, size=(3, 40))
    X = np.log1p(rng.poisson(np.repeat(rates, [50, 30, 20], axis=0))).astype(np.float32)
    a = ad.AnnData(sp.csr_matrix(X) if sparse else X)
    a.var_names = [f"g{i}" for i in range(40)]
    a.obs["cell_type"] = pd.Categorical(np.repeat(["A", "B", "C"], [50, 30, 20]),
                                        categories=["A", "B", "C", "D"])
    a.obs["dose"] = np.repeat([0.0, 1.0], 50)
    return a


def make_like() -> ad.AnnData:
    obs = pd.DataFrame({"cell_type": pd.Categorical(["C"] * 7 + ["A"] * 5,
                                                    categories=["A", "B", "C", "D"])},
                       index=[f"l{i}" for i in range(12)])
    return ad.AnnData(np.zeros((12, 3), dtype=np.float32), obs=obs)


@pytest.mark.parametrize("fn", [baselines.gaussian_pca, baselines.resample])
@pytest.mark.parametrize("sparse", [False, True])
def test_shape_genes_and_categories_follow_like(fn, sparse):
    train, like = make_train(sparse), make_like()
    out = fn(train, like, condition="cell_type", seed=0)
    assert out.shape == (12, 40)
    assert list(out.var_names) == list(train.var_names)
    assert list(out.obs.columns) == ["cell_type"]
    assert list(out.obs.cell_type.cat.categories) == ["A", "B", "C", "D"]
    assert out.obs.cell_type.tolist() == like.obs.cell_type.tolist()
    X = out.X.toarray() if sp.issparse(out.X) else out.X
    assert np.isfinite(X).all() and (X >= 0).all()
    assert ad.concat([train, out]).n_obs == 112  # concat with the real data just works


def test_resample_draws_training_cells_of_the_right_condition():
    train, like = make_train(), make_like()
    out = baselines.resample(train, like, condition="cell_type", seed=3)
    src = out.uns["scdiff"]["train_index"]
    np.testing.assert_array_equal(out.X, train.X[src])
    assert (train.obs.cell_type.to_numpy()[src] == like.obs.cell_type.to_numpy()).all()
    again = baselines.resample(train, like, condition="cell_type", seed=3)
    np.testing.assert_array_equal(again.X, out.X)


def test_gaussian_matches_condition_means_and_is_seeded():
    train = make_train()
    like = train[train.obs.cell_type == "A"]
    like = ad.concat([like] * 10, index_unique="-")
    out = baselines.gaussian_pca(train, like, condition="cell_type", n_pcs=20, seed=1)
    real_mean = train.X[train.obs.cell_type.to_numpy() == "A"].mean(0)
    assert np.corrcoef(out.X.mean(0), real_mean)[0, 1] > 0.95
    again = baselines.gaussian_pca(train, like, condition="cell_type", n_pcs=20, seed=1)
    np.testing.assert_array_equal(again.X, out.X)


def test_conditions_absent_from_train_raise():
    train, like = make_train(), make_like()
    like.obs["cell_type"] = pd.Categorical(["D"] * 12, categories=["A", "B", "C", "D"])
    for fn in (baselines.gaussian_pca, baselines.resample):
        with pytest.raises(InputError, match="absent from train: D"):
            fn(train, like, condition="cell_type")
        with pytest.raises(InputError, match="not found in train.obs"):
            fn(train, like, condition="tissue")


def test_pbmc68k_resample_near_floor_gaussian_worse():
    sc = pytest.importorskip("scanpy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = sc.datasets.pbmc68k_reduced().raw.to_adata()
        perm = np.random.default_rng(0).permutation(data.n_obs)
        cut = int(0.7 * data.n_obs)
        train, test = data[np.sort(perm[:cut])].copy(), data[np.sort(perm[cut:])].copy()
        tables = {name: evaluate(test, fn(train, test, condition="bulk_labels", seed=0),
                                 condition="bulk_labels")
                  for name, fn in (("resample", baselines.resample),
                                   ("gaussian", baselines.gaussian_pca))}
    wide = benchmark_table(tables)
    # Resampled real cells are real cells: every score sits within reach of the floor.
    for metric in ("mmd", "energy", "knn_auc", "zero_frac_mae"):
        assert wide.loc[metric, "resample"] < 1.15 * wide.loc[metric, "floor"], metric
    assert wide.loc["knn_auc", "gaussian"] > wide.loc["knn_auc", "resample"]
    assert wide.loc["mmd", "gaussian"] > wide.loc["mmd", "floor"]
    assert wide.loc["zero_frac_mae", "gaussian"] > 3 * wide.loc["zero_frac_mae", "floor"]
