"""The drug-screen simulator: design, hold-outs, drug features and its ground truth."""

from __future__ import annotations

import doctest
import json
import time

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from scdiff import InputError
from scdiff.datasets import _screen, hill_curve, screen_features, screen_true_mean, simulate_screen


@pytest.fixture(scope="module")
def screen() -> ad.AnnData:
    return simulate_screen(seed=0)


def _log_rate(adata, line, drug, dose):
    return np.log(screen_true_mean(adata, cell_line=line, drug=drug, dose=dose, scale="rate"))


def _arrays(truth):
    return {k: np.asarray(truth[k], dtype=float) for k in (
        "targets", "sensitivity", "loadings", "interaction_loadings", "interaction_matrix",
        "log10_ec50", "hill")}


# --- design ------------------------------------------------------------------


def test_shape_and_columns(screen):
    assert screen.shape == (3 * (1 + 12 * 4 + 10) * 30, 400) == (5310, 400)
    assert list(screen.obs.columns) == ["cell_line", "drug", "dose", "dose_value", "n_counts",
                                        "holdout", "split"]
    assert list(screen.var.columns) == ["pathway", "interaction", "marker_of"]
    assert sp.isspmatrix_csr(screen.X) and screen.X.dtype == np.float32
    counts = screen.layers["counts"]
    assert sp.isspmatrix_csr(counts) and counts.dtype == np.float32
    assert np.array_equal(counts.data, np.round(counts.data))
    dense = counts.toarray()
    x = np.log1p(1e4 * dense / dense.sum(axis=1, keepdims=True))
    np.testing.assert_allclose(screen.X.toarray(), x, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(screen.obs["n_counts"], dense.sum(axis=1))
    assert list(screen.obs["cell_line"].cat.categories) == ["line_0", "line_1", "line_2"]
    assert list(screen.obs["dose"].cat.categories) == ["0", "10", "100", "1000", "10000", "1000+1000"]
    assert (screen.obs.groupby(["cell_line", "drug", "dose"], observed=True).size() == 30).all()


def test_conditions_and_labels(screen):
    obs, truth = screen.obs, screen.uns["screen"]
    drug, dose = obs["drug"].astype(str), obs["dose"].astype(str)
    control = drug == "control"
    assert (dose[control] == "0").all() and (obs["dose_value"][control] == 0).all()
    pairs = drug.str.contains("+", regex=False)
    assert set(drug[pairs]) == set(truth["pairs"]) and len(truth["pairs"]) == 10
    assert (dose[pairs] == "1000+1000").all() and (obs["dose_value"][pairs] == 2000.0).all()
    for pair in truth["pairs"]:
        a, b = pair.split("+")
        assert a < b and a in truth["measured"] and b in truth["measured"]
    single = ~control & ~pairs
    assert set(drug[single]) == {f"drug_{i:02d}" for i in range(12)}
    assert (dose[single].astype(float) == obs["dose_value"][single]).all()
    assert truth["unseen"] == ["drug_10", "drug_11"]
    assert truth["held_out_pairs"] == truth["pairs"][-3:]


def test_var_annotations(screen):
    var, truth = screen.var, screen.uns["screen"]
    assert set(var["marker_of"]) == {"", "line_0", "line_1", "line_2"}
    assert (var["marker_of"] != "").sum() == 30
    for name, genes in truth["pathway_genes"].items():
        assert 25 <= len(genes) <= 40
        assert (var.loc[genes, "pathway"].str.split(",").map(lambda p, n=name: n in p)).all()
        assert (var.loc[genes, "marker_of"] == "").all()
    assert 15 <= var["interaction"].sum() <= 20
    assert var.index[var["interaction"]].tolist() == truth["interaction_genes"]
    # 400 genes hold the five pathways without sharing a gene.
    assert not var["pathway"].str.contains(",").any()


# --- hold-outs ---------------------------------------------------------------


def test_holdout_kinds(screen):
    obs, truth = screen.obs, screen.uns["screen"]
    assert set(obs["holdout"].unique()) == set(_screen.HOLDOUT_KINDS)
    assert ((obs["holdout"] == "") == (obs["split"] == "train")).all()
    counts = obs["holdout"].value_counts()
    assert counts["unseen_drug"] == 2 * 4 * 3 * 30
    assert counts["pair"] == 3 * 3 * 30
    assert counts["combination"] == 4 * 30
    assert counts["dose"] == (10 * 3 - 1) * 30
    rest = len(obs) - counts[["unseen_drug", "pair", "combination", "dose"]].sum()
    assert counts["iid"] == round(0.15 * rest)
    drug, line = obs["drug"].astype(str), obs["cell_line"].astype(str)
    assert truth["held_out_combination"] == ["line_2", "drug_09"]
    # Precedence: unseen_drug > pair > combination > dose > iid.
    assert (obs["holdout"][drug.isin(truth["unseen"])] == "unseen_drug").all()
    assert (obs["holdout"][drug.isin(truth["held_out_pairs"])] == "pair").all()
    combo = (line == "line_2") & (drug == "drug_09")
    assert (obs["holdout"][combo] == "combination").all()
    assert set(obs["holdout"][drug == "control"]) <= {"", "iid"}


def test_no_training_cell_is_held_out(screen):
    train = screen.obs[screen.obs["split"] == "train"]
    truth = screen.uns["screen"]
    drug, line = train["drug"].astype(str), train["cell_line"].astype(str)
    assert not drug.isin(truth["unseen"]).any()
    assert not drug.isin(truth["held_out_pairs"]).any()
    assert not (drug.isin(truth["measured"]) & (train["dose"] == "1000")).any()
    assert not ((line == "line_2") & (drug == "drug_09")).any()
    # What the held-out conditions are learned from is still there.
    assert drug.isin(truth["pairs"][:-3]).any() and (train["dose"] == "1000+1000").any()
    assert ((line == "line_2") & (drug == "control")).any()


def test_held_out_combination_and_dose_are_options():
    adata = simulate_screen(n_cells_per_condition=2, held_out_combination=("line_0", "drug_03"),
                            held_out_dose=100.0, n_held_out_pairs=0, iid_fraction=0.0)
    obs = adata.obs
    combo = (obs["cell_line"] == "line_0") & (obs["drug"] == "drug_03")
    assert (obs["holdout"][combo] == "combination").all()
    assert set(obs.loc[obs["holdout"] == "dose", "dose"].astype(str)) == {"100"}
    assert "pair" not in set(obs["holdout"]) and "iid" not in set(obs["holdout"])


# --- seeds ---------------------------------------------------------------------


def test_deterministic_under_seed(screen):
    again = simulate_screen(seed=0)
    assert (screen.X != again.X).nnz == 0
    assert (screen.layers["counts"] != again.layers["counts"]).nnz == 0
    assert screen.obs.equals(again.obs) and screen.var.equals(again.var)
    assert json.dumps(screen.uns["screen"]) == json.dumps(again.uns["screen"])


def test_seeds_draw_different_worlds(screen):
    other = simulate_screen(seed=1)
    a, b = screen.uns["screen"], other.uns["screen"]
    for key in ("base_log_mean", "targets", "sensitivity", "loadings", "log10_ec50", "hill",
                "interaction_matrix", "dispersion"):
        assert not np.allclose(a[key], b[key]), key
    assert a["pairs"] != b["pairs"] or a["interaction_genes"] != b["interaction_genes"]
    assert (screen.layers["counts"] != other.layers["counts"]).nnz > 0


def test_world_does_not_depend_on_cells_per_condition(screen):
    small = simulate_screen(n_cells_per_condition=3, seed=0)
    big, little = screen.uns["screen"], small.uns["screen"]
    for key in ("base_log_mean", "targets", "loadings", "pairs", "dispersion", "hill"):
        assert json.dumps(big[key]) == json.dumps(little[key]), key
    assert small.n_obs == 177 * 3


# --- drug features ---------------------------------------------------------------


def test_features_table(screen):
    features = screen_features(screen)
    truth = screen.uns["screen"]
    assert features.index.name == "drug" and list(features.index) == truth["drugs"]
    assert list(features.columns) == [*(f"target_{p}" for p in range(5)), "log10_ec50",
                                      *(f"descriptor_{k}" for k in range(3))]
    assert all(pd.api.types.is_float_dtype(t) for t in features.dtypes)
    np.testing.assert_array_equal(features.filter(like="target_").to_numpy(), truth["targets"])
    np.testing.assert_array_equal(features["log10_ec50"], truth["log10_ec50"])
    assert "hill" not in features.columns  # hidden
    ec50 = 10 ** features["log10_ec50"]
    assert ((ec50 >= 30 - 1e-9) & (ec50 <= 3000 + 1e-9)).all()


@pytest.mark.parametrize("kwargs", [{"seed": s} for s in range(4)]
                         + [{"n_drugs": 5, "n_unseen": 1, "n_pathways": 5, "n_pairs": 4, "seed": 7},
                            {"n_drugs": 12, "n_pathways": 2, "seed": 3}])
def test_targets_cover_every_pathway(kwargs):
    adata = simulate_screen(n_cells_per_condition=1, **kwargs)
    truth = adata.uns["screen"]
    targets = screen_features(adata).filter(like="target_").to_numpy()
    hit = targets > 0
    assert ((targets[hit] >= 0.6) & (targets[hit] <= 1.2)).all()
    assert set(hit.sum(axis=1)) <= {1, 2}
    measured = hit[: len(truth["measured"])]
    assert (measured.sum(axis=0) >= 2).all()
    unseen = hit[len(truth["measured"]):]
    assert (measured[:, unseen.any(axis=0)].any(axis=0)).all()


# --- ground truth ----------------------------------------------------------------


def test_single_drug_truth_matches_the_formula(screen):
    truth = screen.uns["screen"]
    arr = _arrays(truth)
    for c, line in enumerate(truth["cell_lines"]):
        control = _log_rate(screen, line, "control", 0)
        for m, drug in enumerate(truth["drugs"]):
            for dose in (10.0, 777.0):
                h = hill_curve(dose, ec50=10 ** arr["log10_ec50"][m], hill=arr["hill"][m])
                lfc = h * (arr["targets"][m] * arr["sensitivity"][c]) @ arr["loadings"]
                np.testing.assert_allclose(_log_rate(screen, line, drug, dose) - control, lfc,
                                           atol=1e-10)
    np.testing.assert_allclose(_log_rate(screen, "line_0", "drug_00", "100"),
                               _log_rate(screen, "line_0", "drug_00", 100.0))


def test_pair_differs_from_additive_by_the_interaction(screen):
    """Golden check: log rate(A+B) - [log rate(A) + log rate(B) - log rate(control)] is
    kappa * H_A * H_B * (t_A W t_B) * l_int, on the interaction genes only."""
    truth = screen.uns["screen"]
    arr, drugs = _arrays(truth), truth["drugs"]
    interaction = screen.var["interaction"].to_numpy()
    largest = 0.0
    for line in truth["cell_lines"]:
        control = _log_rate(screen, line, "control", 0)
        for pair in truth["pairs"]:
            a, b = pair.split("+")
            ia, ib = drugs.index(a), drugs.index(b)
            excess = (_log_rate(screen, line, pair, "1000+1000") - _log_rate(screen, line, a, 1000.0)
                      - _log_rate(screen, line, b, 1000.0) + control)
            h_a = hill_curve(1000.0, ec50=10 ** arr["log10_ec50"][ia], hill=arr["hill"][ia])
            h_b = hill_curve(1000.0, ec50=10 ** arr["log10_ec50"][ib], hill=arr["hill"][ib])
            strength = arr["targets"][ia] @ arr["interaction_matrix"] @ arr["targets"][ib]
            expected = truth["kappa"] * h_a * h_b * strength * arr["interaction_loadings"]
            np.testing.assert_allclose(excess, expected, atol=1e-10)
            assert np.abs(excess[~interaction]).max() < 1e-10
            # interaction=False: the members' effects alone, exactly additive
            alone = np.log(screen_true_mean(screen, cell_line=line, drug=pair, dose="1000+1000",
                                            scale="rate", interaction=False))
            np.testing.assert_allclose(alone, _log_rate(screen, line, pair, "1000+1000") - expected,
                                       atol=1e-10)
            largest = max(largest, np.abs(excess).max())
    assert largest > 0.1
    np.testing.assert_allclose(arr["interaction_matrix"], arr["interaction_matrix"].T)
    assert truth["kappa"] == 1.5


def test_line_by_drug_is_not_additive(screen):
    # The lines' sensitivities differ per pathway, so a drug's effect is not one shape
    # scaled per line: the effects of two lines are not proportional.
    base = {line: _log_rate(screen, line, "control", 0) for line in ("line_0", "line_1")}
    two = [_log_rate(screen, line, "drug_02", 10000.0) - base[line] for line in base]
    assert not np.allclose(two[0], two[1])
    assert abs(np.corrcoef(two[0], two[1])[0, 1]) < 0.9999


@pytest.mark.parametrize("condition", [("line_0", "control", "0"), ("line_1", "drug_04", "10000"),
                                       ("line_2", None, "1000+1000")])
def test_cells_follow_the_true_mean(screen, condition):
    line, drug, dose = condition
    drug = drug or screen.uns["screen"]["pairs"][0]
    obs = screen.obs
    cells = ((obs["cell_line"] == line) & (obs["drug"] == drug) & (obs["dose"] == dose)).to_numpy()
    assert cells.sum() == 30
    empirical = np.asarray(screen.X[cells].mean(axis=0)).ravel()
    truth = screen_true_mean(screen, cell_line=line, drug=drug, dose=dose, n_samples=2000)
    assert np.corrcoef(empirical, truth)[0, 1] > 0.95
    cp10k = screen_true_mean(screen, cell_line=line, drug=drug, dose=dose, scale="cp10k")
    assert cp10k.sum() == pytest.approx(1e4)


def test_truth_survives_h5ad(screen, tmp_path):
    json.dumps(screen.uns["screen"]), json.dumps(screen.uns["drug_features"])
    small = simulate_screen(n_cells_per_condition=2, seed=5)
    small.write_h5ad(tmp_path / "screen.h5ad")
    back = ad.read_h5ad(tmp_path / "screen.h5ad")
    pd.testing.assert_frame_equal(screen_features(back), screen_features(small))
    pair = small.uns["screen"]["pairs"][0]
    for drug, dose in (("drug_11", 300.0), (pair, "1000+50"), ("control", 0)):
        np.testing.assert_allclose(
            screen_true_mean(back, cell_line="line_1", drug=drug, dose=dose, scale="rate"),
            screen_true_mean(small, cell_line="line_1", drug=drug, dose=dose, scale="rate"))


def test_smallest_designs_run():
    adata = simulate_screen(n_cells_per_condition=1, n_genes=72, n_cell_lines=1, n_drugs=2,
                            n_unseen=0, n_pathways=1, n_distractors=0, doses=(5.0,),
                            held_out_dose=5.0, n_pairs=0, n_held_out_pairs=0)
    assert adata.shape == (1 + 2, 72)
    assert list(screen_features(adata).columns) == ["target_0", "log10_ec50"]


def test_fast():
    start = time.perf_counter()
    simulate_screen()
    assert time.perf_counter() - start < 5.0


def test_docstring_examples():
    result = doctest.testmod(_screen, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0


# --- bad arguments ---------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "names"), [
    ({"n_unseen": 10}, "n_unseen"),
    ({"n_unseen": -1}, "n_unseen"),
    ({"held_out_dose": 500.0}, "held_out_dose"),
    ({"n_held_out_pairs": 11}, "n_held_out_pairs"),
    ({"n_pairs": 46}, "n_pairs"),
    ({"n_genes": 99}, "n_genes"),
    ({"n_drugs": 4}, "n_drugs"),
    ({"n_drugs": 1, "n_pathways": 1, "n_unseen": 0}, "n_drugs"),
    ({"n_cells_per_condition": 0}, "n_cells_per_condition"),
    ({"doses": ()}, "doses"),
    ({"doses": (10.0, -1.0), "held_out_dose": 10.0}, "doses"),
    ({"doses": (10.0, 10.0), "held_out_dose": 10.0}, "doses"),
    ({"pair_dose": 0.0}, "pair_dose"),
    ({"iid_fraction": 1.0}, "iid_fraction"),
    ({"held_out_combination": ("line_9", "drug_00")}, "held_out_combination"),
    ({"held_out_combination": ("line_0", "drug_11")}, "held_out_combination"),
    ({"held_out_combination": ("line_0",)}, "held_out_combination"),
])
def test_bad_arguments(kwargs, names):
    with pytest.raises(InputError, match=names):
        simulate_screen(n_cells_per_condition=kwargs.pop("n_cells_per_condition", 1), **kwargs)


def test_too_few_genes_says_how_many():
    with pytest.raises(InputError, match="use n_genes >= 100"):
        simulate_screen(n_genes=99)
    simulate_screen(n_cells_per_condition=1, n_genes=100)


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"cell_line": "line_7", "drug": "drug_00", "dose": 1.0}, "cell_line"),
    ({"cell_line": "line_0", "drug": "drug_99", "dose": 1.0}, "drug"),
    ({"cell_line": "line_0", "drug": "drug_00+drug_00", "dose": "1+1"}, "drug"),
    ({"cell_line": "line_0", "drug": "drug_00+drug_01+drug_02", "dose": "1+1+1"}, "drug"),
    ({"cell_line": "line_0", "drug": "drug_00+drug_01", "dose": "1+2+3"}, "dose"),
    ({"cell_line": "line_0", "drug": "drug_00", "dose": -1.0}, "dose"),
    ({"cell_line": "line_0", "drug": "drug_00", "dose": "a lot"}, "dose"),
    ({"cell_line": "line_0", "drug": "drug_00", "dose": 1.0, "scale": "log"}, "scale"),
])
def test_true_mean_bad_inputs(screen, kwargs, name):
    with pytest.raises(InputError, match=name):
        screen_true_mean(screen, **kwargs)


def test_needs_a_screen():
    plain = ad.AnnData(np.zeros((2, 3), dtype=np.float32))
    with pytest.raises(InputError, match="simulate_screen"):
        screen_features(plain)
    with pytest.raises(InputError, match="simulate_screen"):
        screen_true_mean(plain, cell_line="line_0", drug="control", dose=0)
