"""The simulator's ground truth and the bundled example files."""

from __future__ import annotations

import doctest
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from scdiff import InputError
from scdiff.datasets import _simulate, _truth, hill_curve, sample_truth, simulate, true_mean

EXAMPLES = Path(__file__).resolve().parents[1] / "data_examples"


@pytest.fixture(scope="module")
def sim() -> ad.AnnData:
    return simulate(n_cells=2000, n_genes=300, seed=3)


# --- simulator ---------------------------------------------------------------


def test_deterministic_under_seed(sim):
    again = simulate(n_cells=2000, n_genes=300, seed=3)
    assert (sim.X != again.X).nnz == 0
    assert (sim.layers["counts"] != again.layers["counts"]).nnz == 0
    assert sim.obs.equals(again.obs)
    assert sim.var.equals(again.var)
    other = simulate(n_cells=2000, n_genes=300, seed=4)
    assert (sim.layers["counts"] != other.layers["counts"]).nnz > 0


def test_ground_truth_does_not_depend_on_n_cells(sim):
    small = simulate(n_cells=500, n_genes=300, seed=3)
    for key in ("base_log_mean", "dispersion"):
        np.testing.assert_array_equal(small.uns["simulation"][key], sim.uns["simulation"][key])
    assert small.uns["simulation"]["ec50"] == sim.uns["simulation"]["ec50"]


def test_shapes_dtypes_and_columns(sim):
    assert sim.shape == (2000, 300)
    assert sp.issparse(sim.X) and sim.X.format == "csr" and sim.X.dtype == np.float32
    counts = sim.layers["counts"]
    assert counts.format == "csr" and counts.dtype == np.float32
    np.testing.assert_array_equal(counts.data, np.round(counts.data))
    assert list(sim.var_names[:2]) == ["gene_0000", "gene_0001"]
    assert list(sim.obs.columns) == ["cell_type", "drug", "dose", "n_counts", "holdout", "split"]
    assert list(sim.obs["cell_type"].cat.categories) == ["type_0", "type_1", "type_2"]
    assert list(sim.obs["drug"].cat.categories) == ["control", "drugA", "drugB"]
    assert sim.obs["dose"].dtype == np.float64
    assert (sim.obs.loc[sim.obs["drug"] == "control", "dose"] == 0).all()
    assert (sim.obs.loc[sim.obs["drug"] != "control", "dose"] > 0).all()
    assert set(sim.var.columns) == {
        "marker_of",
        "response_drug",
        "response_sign",
        "response_cell_type",
    }
    for drug in ("drugA", "drugB"):
        n = (sim.var["response_drug"] == drug).sum()
        assert 20 <= n <= 40
        signs = sim.var.loc[sim.var["response_drug"] == drug, "response_sign"]
        assert set(signs) == {-1, 1}
    assert (sim.var["marker_of"] == "type_0").sum() == 10


def test_x_is_log1p_cp10k_of_counts(sim):
    counts = sim.layers["counts"].toarray()
    expected = np.log1p(counts / counts.sum(axis=1, keepdims=True) * 1e4)
    np.testing.assert_allclose(sim.X.toarray(), expected, atol=1e-5)
    np.testing.assert_array_equal(sim.obs["n_counts"], counts.sum(axis=1))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fraction_of_zeros_is_realistic(seed):
    counts = simulate(n_cells=1000, n_genes=500, seed=seed).layers["counts"]
    zeros = 1 - counts.nnz / np.prod(counts.shape)
    assert 0.6 <= zeros <= 0.8


def test_uns_is_plain_and_survives_h5ad(sim, tmp_path):
    params = sim.uns["simulation"]
    for key in ("ec50", "hill", "emax"):
        assert set(params[key]) == {"drugA", "drugB"}
        assert all(isinstance(v, float) for v in params[key].values())
    assert params["seed"] == 3 and params["held_out_doses"] == [50.0]
    assert params["held_out_combinations"] == [["type_2", "drugB"]]
    path = tmp_path / "sim.h5ad"
    sim.write_h5ad(path)
    back = ad.read_h5ad(path)
    for kw in (
        {"cell_type": "type_1", "drug": "drugA", "dose": 75.0},
        {"cell_type": "type_0", "drug": "control", "dose": 0.0},
    ):
        np.testing.assert_allclose(true_mean(back, **kw), true_mean(sim, **kw))


# --- ground truth ------------------------------------------------------------


def test_hill_curve_formula():
    assert hill_curve(0.0, ec50=40.0, hill=1.7) == 0.0
    assert hill_curve(40.0, ec50=40.0, hill=1.7) == pytest.approx(0.5)
    d = np.array([5.0, 20.0, 80.0])
    np.testing.assert_allclose(hill_curve(d, ec50=40.0, hill=1.7), d**1.7 / (40**1.7 + d**1.7))
    assert hill_curve(1e12, ec50=40.0, hill=1.7) == pytest.approx(1.0)


def _responders(adata, drug):
    var = adata.var
    return np.flatnonzero((var["response_drug"] == drug) & (var["response_cell_type"] == ""))


@pytest.mark.parametrize("drug", ["drugA", "drugB"])
def test_response_follows_hill_curve(sim, drug):
    params = sim.uns["simulation"]
    ec50, emax = params["ec50"][drug], params["emax"][drug]
    genes = _responders(sim, drug)
    sign = sim.var["response_sign"].to_numpy()[genes]
    doses = [0.0, *params["doses"], 1e6]
    for ct in params["cell_types"]:
        log_rate = np.stack(
            [np.log(true_mean(sim, cell_type=ct, drug=drug, dose=d, scale="rate")) for d in doses]
        )[:, genes]
        lfc = (log_rate - log_rate[0]) * sign
        assert (np.diff(lfc, axis=0) > 0).all()  # monotone in dose, in the gene's direction
        full = lfc[-1]
        scale = params["cell_type_scale"][drug][ct]
        assert (full <= emax * scale + 1e-9).all() and (full >= 0.5 * emax * scale - 1e-9).all()
        at_ec50 = np.log(true_mean(sim, cell_type=ct, drug=drug, dose=ec50, scale="rate"))
        half = (at_ec50[genes] - log_rate[0]) * sign
        np.testing.assert_allclose(half, 0.5 * full, rtol=1e-6)


def test_log1p_truth_is_monotone_for_strong_responders(sim):
    params = sim.uns["simulation"]
    genes = _responders(sim, "drugA")
    lfc = np.asarray(params["max_lfc"]["drugA"])[0, genes]
    strong = genes[np.abs(lfc) > 1.0]
    assert strong.size >= 3
    grid = [0.0, *params["doses"]]
    mu = np.stack([true_mean(sim, cell_type="type_0", drug="drugA", dose=d) for d in grid])
    steps = np.diff(mu[:, strong], axis=0) * sim.var["response_sign"].to_numpy()[strong]
    assert (steps > -0.06).all()  # Monte Carlo noise only (twice the largest standard error)
    assert (steps.sum(axis=0) > 0.3).all()


def test_truth_matches_simulated_cells(sim):
    groups = sim.obs.groupby(["cell_type", "drug", "dose"], observed=True).indices
    for ct, drug, dose in [("type_0", "control", 0.0), ("type_1", "drugA", 100.0)]:
        rows = groups[(ct, drug, dose)]
        empirical = np.asarray(sim.X[rows].mean(axis=0)).ravel()
        truth = true_mean(sim, cell_type=ct, drug=drug, dose=dose)
        assert np.corrcoef(empirical, truth)[0, 1] > 0.99
        assert np.abs(empirical - truth).mean() < 0.12


def test_scales_of_true_mean(sim):
    kw = {"cell_type": "type_2", "drug": "drugB", "dose": 30.0}
    rate = true_mean(sim, scale="rate", **kw)
    np.testing.assert_allclose(true_mean(sim, scale="cp10k", **kw), 1e4 * rate / rate.sum())
    control = true_mean(sim, cell_type="type_2", drug="control", dose=0.0)
    np.testing.assert_allclose(true_mean(sim, cell_type="type_2", drug="drugB", dose=0.0), control)
    with pytest.raises(InputError, match="cell_type = 'nope' needs to be one of"):
        true_mean(sim, cell_type="nope", drug="drugB", dose=1.0)
    with pytest.raises(InputError, match="scale"):
        true_mean(sim, scale="linear", **kw)


# --- hold-outs ---------------------------------------------------------------


def test_holdouts(sim):
    obs = sim.obs
    train = obs[obs["split"] == "train"]
    assert (train["holdout"] == "").all()
    assert ((obs["split"] == "test") == (obs["holdout"] != "")).all()
    assert not (train["dose"] == 50.0).any()
    assert not ((train["cell_type"] == "type_2") & (train["drug"] == "drugB")).any()
    combo = obs[(obs["cell_type"] == "type_2") & (obs["drug"] == "drugB")]
    assert (combo["holdout"] == "combination").all()
    dose = obs[obs["holdout"] == "dose"]
    assert (dose["dose"] == 50.0).all() and set(dose["drug"]) == {"drugA", "drugB"}
    iid = obs["holdout"] == "iid"
    eligible = (obs["holdout"] == "iid") | (obs["holdout"] == "")
    assert iid.sum() == round(0.2 * eligible.sum())
    # Every training condition also appears in the i.i.d. test set.
    train_conditions = set(map(tuple, train[["cell_type", "drug", "dose"]].astype(str).values))
    iid_conditions = set(map(tuple, obs[iid][["cell_type", "drug", "dose"]].astype(str).values))
    assert iid_conditions == train_conditions


def test_custom_holdouts():
    adata = simulate(
        n_cells=600,
        n_genes=200,
        held_out_doses=(10.0, 500.0),
        held_out_combinations=[("type_0", "drugA"), ("type_1", "drugB")],
        iid_fraction=0.0,
    )
    train = adata.obs[adata.obs["split"] == "train"]
    assert not train["dose"].isin([10.0, 500.0]).any()
    assert set(adata.obs["holdout"]) == {"", "dose", "combination"}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"control": "vehicle"}, "control = 'vehicle' needs to be one of drugs"),
        ({"doses": (0.0, 10.0)}, "distinct positive"),
        ({"held_out_doses": (7.0,)}, "need to be among doses"),
        ({"held_out_combinations": [("type_9", "drugA")]}, "held_out_combinations"),
        ({"held_out_combinations": [("type_0", "control")]}, "treated drug"),
        ({"n_genes": 50}, "n_genes = 50 is too small"),
        ({"iid_fraction": 1.0}, "iid_fraction"),
    ],
)
def test_bad_arguments_raise_input_error(kwargs, match):
    with pytest.raises(InputError, match=match):
        simulate(n_cells=100, **{"n_genes": 200, **kwargs})


def test_fast():
    import time

    start = time.perf_counter()
    simulate(n_cells=5000, n_genes=500)
    assert time.perf_counter() - start < 5.0


def test_docstring_examples():
    for module in (_simulate, _truth):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0 and result.attempted > 0


# --- bundled files -----------------------------------------------------------


@pytest.fixture(scope="module")
def pbmc() -> tuple[ad.AnnData, ad.AnnData]:
    return ad.read_h5ad(EXAMPLES / "pbmc_train.h5ad"), ad.read_h5ad(EXAMPLES / "pbmc_test.h5ad")


def test_bundled_files_exist_and_are_small():
    names = ["pbmc_train", "pbmc_test", "simulated", "simulated_train", "simulated_test",
             "immune_wide_train", "immune_wide_test"]
    for name in names:
        assert (EXAMPLES / f"{name}.h5ad").is_file(), "run python data_examples/make_examples.py"
    total = sum(p.stat().st_size for p in EXAMPLES.iterdir() if p.is_file())
    assert total < 10e6  # the wide immune panel (issue 4) is 2.8 MB of it


def test_pbmc_splits(pbmc):
    train, test = pbmc
    assert (train.n_obs, test.n_obs) == (490, 210) and train.n_vars == 765
    assert list(train.var_names) == list(test.var_names)
    cats = list(train.obs["cell_type"].cat.categories)
    assert cats == list(test.obs["cell_type"].cat.categories) and len(cats) == 10
    assert set(test.obs["cell_type"]) == set(cats)  # stratified: every type in both
    assert not set(train.obs_names) & set(test.obs_names)
    for cols in ("n_counts", "n_genes", "percent_mito", "S_score", "G2M_score", "phase"):
        assert cols in train.obs


@pytest.mark.parametrize("which", [0, 1])
def test_pbmc_values(pbmc, which):
    adata = pbmc[which]
    x = adata.X
    assert sp.issparse(x) and x.dtype == np.float32
    assert x.min() >= 0 and x.max() < 15
    counts = adata.layers["counts"]
    np.testing.assert_array_equal(counts.data, np.round(counts.data))
    per10k = counts.toarray() / adata.obs["n_counts"].to_numpy()[:, None] * 1e4
    np.testing.assert_allclose(np.log1p(per10k), x.toarray(), atol=2e-3)


def test_bundled_simulation_matches_simulator():
    full = ad.read_h5ad(EXAMPLES / "simulated.h5ad")
    train = ad.read_h5ad(EXAMPLES / "simulated_train.h5ad")
    test = ad.read_h5ad(EXAMPLES / "simulated_test.h5ad")
    assert full.shape == (3300, 500)
    assert train.n_obs + test.n_obs == full.n_obs
    assert (train.obs["split"] == "train").all() and (test.obs["split"] == "test").all()
    for col in ("cell_type", "drug", "holdout", "split"):
        cats = list(full.obs[col].cat.categories)
        assert list(train.obs[col].cat.categories) == list(test.obs[col].cat.categories) == cats
    fresh = simulate(n_cells=3300, n_genes=500, seed=0)
    assert (fresh.layers["counts"] != full.layers["counts"]).nnz == 0
    assert fresh.obs.equals(full.obs)


def test_immune_wide_panel_is_wide_with_few_cells_per_cluster():
    train = ad.read_h5ad(EXAMPLES / "immune_wide_train.h5ad")
    test = ad.read_h5ad(EXAMPLES / "immune_wide_test.h5ad")
    assert (train.n_obs, test.n_obs) == (391, 168) and train.n_vars > 20 * train.n_obs
    assert list(train.var_names) == list(test.var_names)
    sizes = train.obs["cluster"].value_counts()
    assert len(sizes) == 8 and sizes.min() < 10  # few cells per type
    x = train.X.data
    assert np.allclose(x, np.round(x)) and x.min() >= 1  # UMI counts


# --- fresh cells from the ground truth -----------------------------------------


def test_sample_truth_draws_the_simulators_distribution(sim):
    obs = sim.obs[(sim.obs["cell_type"] == "type_1") & (sim.obs["drug"] == "drugA")
                  & (sim.obs["dose"] == 1000.0)]
    many = pd.concat([obs] * 40)  # ~1,400 cells of one condition
    many.index = [f"c{i}" for i in range(len(many))]
    fresh = sample_truth(sim, many, seed=5)
    assert fresh.shape == (len(many), sim.n_vars) and list(fresh.var_names) == list(sim.var_names)
    assert fresh.obs[["cell_type", "drug", "dose"]].equals(many[["cell_type", "drug", "dose"]])
    counts = fresh.layers["counts"].toarray()
    np.testing.assert_allclose(fresh.obs["n_counts"], counts.sum(1))
    np.testing.assert_allclose(fresh.X.toarray(), _truth.log_normalize(counts), rtol=1e-5, atol=1e-6)
    mu = true_mean(sim, cell_type="type_1", drug="drugA", dose=1000.0)
    # the Monte Carlo mean of ~1,400 cells: standard error about 0.02 per gene
    assert np.abs(np.asarray(fresh.X.mean(0)).ravel() - mu).max() < 0.12
    # the spread matches the simulator's own cells of that condition, gene by gene
    real = sim[obs.index].X.toarray()
    r = np.corrcoef(real.var(0), fresh.X.toarray().var(0))[0, 1]
    assert r > 0.9, r


def test_sample_truth_seeds_doses_and_errors(sim):
    obs = sim.obs.iloc[:50]
    one, again = sample_truth(sim, obs, seed=1), sample_truth(sim.uns["simulation"], obs, seed=1)
    assert (one.X != again.X).nnz == 0
    assert (one.X != sample_truth(sim, sim[:50], seed=1).X).nnz == 0  # an AnnData or its obs
    assert (one.X != sample_truth(sim, obs, seed=2).X).nnz > 0
    # any dose, also one never simulated
    unseen = pd.concat([obs.assign(cell_type="type_0", drug="drugB", dose=250.0)] * 20)
    fresh = sample_truth(sim, unseen.set_axis([f"u{i}" for i in range(len(unseen))]), seed=0)
    mu = true_mean(sim, cell_type="type_0", drug="drugB", dose=250.0)
    assert np.abs(np.asarray(fresh.X.mean(0)).ravel() - mu).max() < 0.15
    with pytest.raises(InputError, match="no column 'dose'"):
        sample_truth(sim, obs.drop(columns="dose"))
    with pytest.raises(InputError, match="non-numeric"):
        sample_truth(sim, obs.assign(dose="high"))
    with pytest.raises(InputError, match="cell_type = 'type_9'"):
        sample_truth(sim, obs.assign(cell_type="type_9"))


# --- the gene-programmes simulator ------------------------------------------------------------

@pytest.fixture(scope="module")
def programmes():
    from scdiff.datasets import simulate_programmes

    return simulate_programmes(n_cells=1200, n_genes=600, n_cell_types=3, programme_genes=(40, 80),
                               n_markers=10, seed=3)


def test_programmes_shapes_truth_and_split(programmes):
    a = programmes
    assert a.shape == (1200, 600) and sp.issparse(a.X)
    assert np.array_equal(a.X.data, np.round(a.X.data))  # counts
    truth = a.uns["simulation"]
    assert truth["kind"] == "programmes" and np.asarray(truth["loadings"]).shape == (2 + 3 * 3, 600)
    assert a.obs["split"].value_counts()["test"] == 240
    counts_per_type = a.obs.groupby("cell_type", observed=True).size()
    assert (counts_per_type == 400).all()
    zeros = 1 - a.X.nnz / np.prod(a.shape)
    assert 0.6 < zeros < 0.95  # sparse as UMI data


def test_programme_genes_move_together_within_a_type(programmes):
    """Genes loading on one programme correlate within a cell type beyond what the library size
    explains; genes of no programme do not."""
    a = programmes
    truth = a.uns["simulation"]
    load = np.asarray(truth["loadings"])
    strength = np.asarray(truth["strength"])
    cells = a[a.obs["cell_type"] == "type_0"]
    x = np.log1p(cells.X.toarray())
    size = np.c_[np.ones(len(x)), np.log(np.asarray(cells.X.sum(1)).ravel())]
    rest = x - size @ np.linalg.lstsq(size, x, rcond=None)[0]  # the library size regressed out

    def median_pair_corr(genes, sign):
        c = np.corrcoef(rest[:, genes], rowvar=False) * sign[:, None] * sign[None, :]
        return np.median(c[np.triu_indices(len(genes), 1)])

    own = 2  # the first programme of type 0
    assert strength[own, 0] == 1.0 and strength[own, 1] == 0.0
    genes = np.flatnonzero(np.abs(load[own]) > 0.4)
    genes = genes[np.argsort(-x[:, genes].mean(0))[:10]]  # its ten best-expressed genes
    assert median_pair_corr(genes, np.sign(load[own, genes])) > 0.07
    quiet = np.flatnonzero(np.abs(load).sum(0) == 0)
    quiet = quiet[np.argsort(-x[:, quiet].mean(0))[:10]]
    assert abs(median_pair_corr(quiet, np.ones(len(quiet)))) < 0.04


def test_programme_truth_draws_the_simulators_distribution(programmes):
    from scdiff.datasets import sample_truth

    a = programmes
    fresh = sample_truth(a, a[:600], seed=1)
    assert fresh.shape == (600, 600) and "counts" in fresh.layers
    real = np.asarray(a[:600].X.mean(0)).ravel()
    new = np.asarray(fresh.layers["counts"].mean(0)).ravel()
    assert np.corrcoef(np.log1p(real), np.log1p(new))[0, 1] > 0.98
    with pytest.raises(InputError, match="cell types"):
        sample_truth(a, pd.DataFrame({"cell_type": ["type_9"]}))


def test_programme_simulator_checks_its_arguments():
    from scdiff.datasets import simulate_programmes

    with pytest.raises(InputError, match="programme_genes"):
        simulate_programmes(n_cells=10, n_genes=100, programme_genes=(50, 90))
    with pytest.raises(InputError, match="test_fraction"):
        simulate_programmes(n_cells=10, n_genes=100, programme_genes=(5, 9), n_markers=5, test_fraction=1.0)
    with pytest.raises(InputError, match="markers"):
        simulate_programmes(n_cells=10, n_genes=100, programme_genes=(5, 9))
