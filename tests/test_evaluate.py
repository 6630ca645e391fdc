"""scdiff.evaluate (scdiff.metrics): the metrics' properties, the floor, determinism, errors, the report."""

from __future__ import annotations

import inspect
import json
import math
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import scipy.stats

import scdiff
from scdiff import InputError, write_report
from scdiff.metrics import benchmark_table, energy_distance, evaluate, fit_pca, mmd_rbf, wasserstein_pcs
from scdiff.metrics._classifiers import knn_auc
from scdiff.metrics._distances import MMD_SCALES

GROUPS = ("A", "B", "C")


def make_cells(n_per: int = 60, n_genes: int = 50, *, shift: float = 0.0, seed: int = 0,
               sparse: bool = False) -> ad.AnnData:
    """Poisson counts -> log1p, 3 well-separated groups; ``shift`` scales 15 genes' rates."""
    rates = np.random.default_rng(123).gamma(2.0, 1.0, size=(len(GROUPS), n_genes))
    rates[:, :15] *= 1.0 + shift
    rng = np.random.default_rng(seed)
    X = np.log1p(rng.poisson(np.repeat(rates, n_per, axis=0))).astype(np.float32)
    a = ad.AnnData(sp.csr_matrix(X) if sparse else X)
    a.var_names = [f"g{i}" for i in range(n_genes)]
    a.obs_names = [f"s{seed}_c{i}" for i in range(a.n_obs)]
    a.obs["cell_type"] = pd.Categorical(np.repeat(GROUPS, n_per))
    a.obs["batch"] = pd.Categorical(np.tile(["b1", "b2"], a.n_obs // 2))
    return a


def overall(table: pd.DataFrame, metric: str, col: str = "value") -> float:
    return float(table.loc[(table.group == "overall") & (table.metric == metric), col].iloc[0])


# --- the math, against hand-computed values ---------------------------------------------------

def test_mmd_golden_value():
    x, y = np.array([[0.0], [1.0]]), np.array([[2.0]])

    def k(d):
        return sum(math.exp(-d * d / (2 * s * s)) for s in MMD_SCALES)  # sigma = 1

    expected = (2 * k(0) + 2 * k(1)) / 4 + k(0) - 2 * (k(2) + k(1)) / 2
    assert mmd_rbf(x, y, sigma=1.0) == pytest.approx(expected, rel=1e-12)


def test_energy_golden_value_and_scipy():
    # 2 E|X-Y| - E|X-X'| - E|Y-Y'| = 2 * 1.5 - 0.5 - 0
    assert energy_distance(np.array([[0.0], [1.0]]), np.array([[2.0]])) == pytest.approx(2.5)
    rng = np.random.default_rng(0)
    u, v = rng.normal(size=40), rng.normal(1.0, 2.0, size=30)
    # scipy's 1-D energy distance is the square root of the V-statistic.
    ours = energy_distance(u[:, None], v[:, None])
    assert ours == pytest.approx(scipy.stats.energy_distance(u, v) ** 2, rel=1e-9)


def test_distances_zero_on_identical_sets_and_wasserstein_matches_scipy():
    x = np.random.default_rng(1).normal(size=(50, 4))
    assert mmd_rbf(x, x) == pytest.approx(0.0, abs=1e-12)
    assert energy_distance(x, x) == pytest.approx(0.0, abs=1e-12)
    y = x + 0.3
    assert wasserstein_pcs(x, y) == pytest.approx(
        np.mean([scipy.stats.wasserstein_distance(x[:, j], y[:, j]) for j in range(4)]))
    assert wasserstein_pcs(x, y) == pytest.approx(0.3)


def test_knn_auc_half_for_same_and_one_for_separated_samples():
    rng = np.random.default_rng(0)
    same = knn_auc(rng.normal(size=(300, 5)), rng.normal(size=(300, 5)), seed=0)
    apart = knn_auc(rng.normal(size=(300, 5)), rng.normal(size=(300, 5)) + 3.0, seed=0)
    assert abs(same - 0.5) < 0.08
    assert apart > 0.97


def test_pca_exact_and_arpack_agree_and_sparse_projects_like_dense():
    X = make_cells().X
    exact, arpack = fit_pca(X, n_pcs=5, method="exact"), fit_pca(X, n_pcs=5, method="arpack")
    np.testing.assert_allclose(exact.components[:3], arpack.components[:3], atol=1e-6)
    sparse = fit_pca(sp.csr_matrix(X), n_pcs=5)
    np.testing.assert_allclose(sparse.transform(sp.csr_matrix(X)), exact.transform(X), atol=1e-6)


# --- evaluate: properties of the scores --------------------------------------------------------

def test_identical_sets_score_zero_distance_and_floor_level():
    real = make_cells(seed=1)
    table = evaluate(real, real.copy(), condition="cell_type", train=real, n_pcs=10)
    for metric in ("mmd", "energy", "wasserstein_pc", "zero_frac_mae"):
        assert overall(table, metric) == pytest.approx(0.0, abs=1e-9)
    for metric in ("mean_pearson", "var_pearson", "marker_overlap"):
        assert overall(table, metric) == pytest.approx(1.0)
    # Without train, a copy of the real cells scores at (or below) the half-vs-half floor.
    table = evaluate(real, real.copy(), condition="cell_type", n_pcs=10)
    assert overall(table, "mmd") <= 1.2 * overall(table, "mmd", "floor")
    assert overall(table, "knn_auc") <= overall(table, "knn_auc", "floor") + 0.05


def test_scores_worsen_monotonically_with_the_shift():
    real = make_cells(seed=1)
    tables = [evaluate(real, make_cells(seed=2, shift=s), condition="cell_type", n_pcs=10)
              for s in (0.25, 0.75, 3.0)]
    for metric in ("mmd", "energy", "wasserstein_pc", "knn_auc"):
        values = [overall(t, metric) for t in tables]
        assert values[0] < values[1] < values[2], (metric, values)
    assert overall(tables[0], "knn_auc") < 0.75 and overall(tables[2], "knn_auc") > 0.9
    means = [overall(t, "mean_pearson") for t in tables]
    assert means[0] > means[1] > means[2]
    ratios = [overall(t, "mmd", "ratio") for t in tables]
    assert ratios[0] < ratios[1] < ratios[2] and ratios[2] > 2


def test_same_distribution_scores_near_the_floor():
    table = evaluate(make_cells(seed=1), make_cells(seed=2), condition="cell_type", n_pcs=10)
    assert abs(overall(table, "knn_auc") - 0.5) < 0.12
    assert overall(table, "mmd", "ratio") < 2.0
    assert overall(table, "label_accuracy") > 0.9


def test_shuffled_labels_ruin_label_fidelity():
    real, fake = make_cells(seed=1), make_cells(seed=2)
    fake.obs["cell_type"] = pd.Categorical(
        np.random.default_rng(0).permutation(fake.obs["cell_type"].to_numpy()))
    table = evaluate(real, fake, condition="cell_type", n_pcs=10)
    assert overall(table, "label_accuracy", "floor") > 0.9
    assert overall(table, "label_accuracy") < 0.6
    assert overall(table, "marker_overlap") < overall(table, "marker_overlap", "floor")


def test_memorisation_flags_copies_of_training_cells():
    train, real = make_cells(seed=1), make_cells(seed=2)
    with pytest.warns(UserWarning, match="copying"):
        copied = evaluate(real, train.copy(), condition="cell_type", train=train, n_pcs=10)
    # equal-size references: copies are caught when their source is in the train subsample
    assert overall(copied, "copy_fraction") > overall(copied, "copy_fraction", "floor") + 0.3
    assert overall(copied, "nn_distance_ratio") < 0.5 * overall(copied, "nn_distance_ratio", "floor")
    assert copied.loc[copied.metric == "copy_fraction", "flagged"].all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fresh = evaluate(real, make_cells(seed=3), condition="cell_type", train=train, n_pcs=10)
    assert overall(fresh, "copy_fraction") < 0.05
    assert 0.8 < overall(fresh, "nn_distance_ratio") < 1.25
    assert not fresh["flagged"].any()


def test_membership_attack_finds_the_training_cells_of_copies_only():
    train, real = make_cells(seed=1), make_cells(seed=2)
    with pytest.warns(UserWarning, match="copying"):
        copied = evaluate(real, train.copy(), condition="cell_type", train=train, n_pcs=10)
    # every member has a generated cell at distance 0; held-out cells do not
    assert overall(copied, "membership_auc") > 0.95
    assert abs(overall(copied, "membership_auc", "floor") - 0.5) < 0.15
    fresh = evaluate(real, make_cells(seed=3), condition="cell_type", train=train, n_pcs=10)
    assert abs(overall(fresh, "membership_auc") - 0.5) < 0.15
    assert set(fresh.loc[fresh.metric == "membership_auc", "group"]) == {"overall"}


def test_membership_auc_golden_values():
    from scdiff.metrics._memorisation import membership_auc

    assert membership_auc(np.array([0.1, 0.2]), np.array([1.0, 2.0])) == 1.0
    assert membership_auc(np.array([1.0, 2.0]), np.array([0.1, 0.2])) == 0.0
    # one of the four (member, other) pairs has the member closer: AUC 1/4
    assert membership_auc(np.array([0.5, 3.0]), np.array([0.2, 2.0])) == 0.25


def test_correlation_distance_sees_genes_that_stop_moving_together():
    from scdiff.metrics._moments import gene_stats, moment_metrics

    rng = np.random.default_rng(0)
    factor = rng.normal(size=(400, 1))
    shared = factor + 0.5 * rng.normal(size=(400, 6))  # six genes driven by one programme
    alone = rng.normal(size=(400, 6)) * shared.std(axis=0)  # same spread, nothing shared
    genes = np.arange(6)
    corr = lambda x: np.corrcoef(x, rowvar=False)  # noqa: E731
    same = moment_metrics(gene_stats(shared), gene_stats(shared), corr(shared), corr(shared))
    lost = moment_metrics(gene_stats(shared), gene_stats(alone), corr(shared), corr(alone))
    assert same["corr_distance"] == 0.0
    # the programme's correlation is 1 / (1 + 0.25) = 0.8 between every pair; without it ~0
    assert 0.7 < lost["corr_distance"] < 0.9
    assert len(genes) == corr(shared).shape[0]


# --- evaluate: the table, options and errors ---------------------------------------------------

def test_table_layout_and_directions():
    table = evaluate(make_cells(seed=1), make_cells(seed=2), condition="cell_type", n_pcs=10)
    assert list(table.columns) == ["group", "metric", "value", "floor", "ratio", "n_real",
                                   "n_generated", "better", "flagged"]
    assert list(table.group.unique()) == ["A", "B", "C", "overall"]
    assert set(table.better) == {"lower", "higher", "0.5"}
    assert set(table.metric) == set(scdiff.metrics.METRICS) - {"nn_distance_ratio",
                                                                "copy_fraction", "membership_auc"}
    # Without train the generated cells meet one half of the real cells, sized like the other.
    row = table[(table.group == "A") & (table.metric == "mmd")].iloc[0]
    assert (row.n_real, row.n_generated) == (30, 30)
    assert table.attrs["scdiff"]["floor"] == "real half vs real half"


def test_deterministic_under_seed():
    real, fake = make_cells(seed=1), make_cells(seed=2, shift=0.3)
    a = evaluate(real, fake, condition="cell_type", n_pcs=10, seed=7)
    b = evaluate(real, fake, condition="cell_type", n_pcs=10, seed=7)
    pd.testing.assert_frame_equal(a, b)
    c = evaluate(real, fake, condition="cell_type", n_pcs=10, seed=8)
    assert not np.allclose(a["value"], c["value"], equal_nan=True)


def test_sparse_matches_dense_and_gene_order_does_not_matter():
    real, fake = make_cells(seed=1), make_cells(seed=2, shift=0.3)
    dense = evaluate(real, fake, condition="cell_type", n_pcs=10)
    sparse = evaluate(make_cells(seed=1, sparse=True), make_cells(seed=2, shift=0.3, sparse=True),
                      condition="cell_type", n_pcs=10)
    reordered = evaluate(real, fake[:, fake.var_names[::-1]], condition="cell_type", n_pcs=10)
    np.testing.assert_allclose(sparse["value"], dense["value"], atol=1e-6, equal_nan=True)
    np.testing.assert_allclose(reordered["value"], dense["value"], atol=1e-6, equal_nan=True)


def test_gene_mismatch_and_bad_condition_raise_input_error():
    real, fake = make_cells(seed=1), make_cells(seed=2)
    with pytest.raises(InputError, match="genes not in the real data"):
        evaluate(real, fake[:, :40], condition="cell_type")
    renamed = fake.copy()
    renamed.var_names = [f"x{i}" for i in range(renamed.n_vars)]
    with pytest.raises(InputError, match="same var_names"):
        evaluate(real, renamed)
    with pytest.raises(InputError, match="'tissue' not found in real.obs"):
        evaluate(real, fake, condition="tissue")
    with pytest.raises(InputError, match="n_pcs"):
        evaluate(real, fake, n_pcs=1)


def test_small_groups_are_skipped_with_a_warning():
    real, fake = make_cells(seed=1), make_cells(seed=2)
    fake = fake[(fake.obs.cell_type != "C") | (np.arange(fake.n_obs) % 20 == 0)].copy()
    with pytest.warns(UserWarning, match=r"skipped groups.*C \(real 60, generated 3\)"):
        table = evaluate(real, fake, condition="cell_type", n_pcs=10)
    assert "C" not in set(table.group)
    with pytest.raises(InputError, match="no group has"), pytest.warns(UserWarning):
        evaluate(real, fake[fake.obs.cell_type == "C"], condition="cell_type")


def test_no_condition_list_condition_and_cap():
    real, fake = make_cells(seed=1), make_cells(seed=2)
    table = evaluate(real, fake, n_pcs=10, max_cells=40)
    assert set(table.group) == {"all", "overall"}
    assert "label_accuracy" not in set(table.metric) and "marker_overlap" not in set(table.metric)
    assert table.attrs["scdiff"]["capped_groups"] == ["all"]
    assert table.n_real.max() <= 40 and table.n_generated.max() <= 40
    table = evaluate(real, fake, condition=["cell_type", "batch"], n_pcs=10)
    assert "A | b1" in set(table.group) and len(set(table.group)) == 7


def test_key_added_stores_a_writable_record(tmp_path):
    real, fake = make_cells(seed=1), make_cells(seed=2)
    table = evaluate(real, fake, condition="cell_type", n_pcs=10, key_added="scdiff_eval")
    stored = fake.uns["scdiff_eval"]
    assert stored["params"]["max_cells"] == 20000
    np.testing.assert_allclose(stored["table"]["value"], table["value"])
    fake.write_h5ad(tmp_path / "fake.h5ad")
    back = ad.read_h5ad(tmp_path / "fake.h5ad").uns["scdiff_eval"]
    assert list(back["table"]["metric"]) == list(table["metric"])


def test_benchmark_table_lines_up_methods():
    real = make_cells(seed=1)
    good = evaluate(real, make_cells(seed=2), condition="cell_type", n_pcs=10)
    bad = evaluate(real, make_cells(seed=2, shift=1.0), condition="cell_type", n_pcs=10)
    wide = benchmark_table({"good": good, "bad": bad})
    assert list(wide.columns) == ["good", "bad", "floor", "better"]
    assert wide.loc["mmd", "good"] < wide.loc["mmd", "bad"]
    assert wide.loc["mmd", "floor"] == pytest.approx(overall(good, "mmd", "floor"))
    with pytest.raises(InputError):
        benchmark_table({"x": pd.DataFrame({"a": [1]})})


def test_write_report_files_and_refusal(tmp_path):
    real, fake = make_cells(seed=1), make_cells(seed=2, shift=0.3)
    table = evaluate(real, fake, condition="cell_type", n_pcs=10)
    path = write_report(tmp_path / "rep", real, fake, table, condition="cell_type")
    names = {p.name for p in (tmp_path / "rep").iterdir()}
    assert {"report.md", "metrics.json", "metrics.csv", "umap.png", "mean_scatter.png",
            "marker_dotplot.png", "metric_bars.png"} <= names
    text = path.read_text()
    assert "floor" in text and "20,000" in text and "knn_auc" in text
    data = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert data["params"]["max_cells"] == 20000 and len(data["metrics"]) == len(table)
    assert len(pd.read_csv(tmp_path / "rep" / "metrics.csv")) == len(table)
    with pytest.raises(InputError, match="not empty"):
        write_report(tmp_path / "rep", real, fake, table, condition="cell_type")
    write_report(tmp_path / "rep", real, fake, table, condition="cell_type", overwrite=True)


def test_public_api_conventions():
    """Data first, options keyword-only, numpydoc with an Examples block."""
    funcs = [evaluate, benchmark_table, write_report, mmd_rbf, energy_distance,
             scdiff.metrics.baselines.gaussian_pca, scdiff.metrics.baselines.resample]
    for f in funcs:
        params = list(inspect.signature(f).parameters.values())
        with_default = [p for p in params if p.default is not p.empty]
        assert all(p.kind == p.KEYWORD_ONLY for p in with_default), f.__name__
        assert "Examples" in (f.__doc__ or ""), f.__name__
