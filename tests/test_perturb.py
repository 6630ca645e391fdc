"""Perturbation scores, baselines, dose response, translation and the CLI."""

from __future__ import annotations

import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import scdiff
from scdiff.perturb import Design, additive, evaluate_perturbation, nearest_dose, r2_score

DATA = Path(__file__).parent.parent / "data_examples"


@pytest.fixture(scope="module")
def sim():
    return ad.read_h5ad(DATA / "simulated_train.h5ad"), ad.read_h5ad(DATA / "simulated_test.h5ad")


def _mean(a, **where):
    mask = np.ones(a.n_obs, dtype=bool)
    for k, v in where.items():
        mask &= (a.obs[k].astype(str) if isinstance(v, str) else a.obs[k]).to_numpy() == v
    return np.asarray(a.X[mask].mean(axis=0)).ravel()


def test_nearest_dose_uses_the_nearest_log_dose(sim):
    train, _ = sim
    groups = pd.DataFrame({"cell_type": ["type_0", "type_2"], "drug": ["drugA", "drugB"],
                           "dose": [50.0, 100.0]})
    pred = nearest_dose(train, groups, design=Design())
    # log1p(50) is nearer log1p(100) than log1p(10)
    np.testing.assert_allclose(pred[0], _mean(train, cell_type="type_0", drug="drugA", dose=100.0), rtol=1e-5)
    # type_2 x drugB was never measured: its control
    np.testing.assert_allclose(pred[1], _mean(train, cell_type="type_2", drug="control"), rtol=1e-5)


def test_additive_adds_the_mean_effect_of_the_other_cell_types(sim):
    train, _ = sim
    groups = pd.DataFrame({"cell_type": ["type_2"], "drug": ["drugB"], "dose": [500.0]})
    effect = np.mean([_mean(train, cell_type=c, drug="drugB", dose=500.0)
                      - _mean(train, cell_type=c, drug="control") for c in ("type_0", "type_1")], axis=0)
    expect = _mean(train, cell_type="type_2", drug="control") + effect
    np.testing.assert_allclose(additive(train, groups, design=Design())[0], expect, rtol=1e-4, atol=1e-6)


def test_evaluate_scores_a_perfect_prediction_one_and_noise_lower(sim):
    train, test = sim
    real = test[test.obs["holdout"] == "dose"]
    table = evaluate_perturbation(real, real, train=train)
    ours = table[table["method"] == "scdiff"]
    assert len(ours) == 5 and np.allclose(ours[["r2_all", "r2_top", "r2_delta_top"]], 1.0)
    rng = np.random.default_rng(0)
    noisy = real.copy()
    noisy.X = real.X.toarray() + rng.normal(0, 3.0, size=real.shape)
    worse = evaluate_perturbation(real, noisy, train=train, baselines=False)
    assert (worse["r2_delta_top"] < 0.95).all()
    assert np.allclose(ours[["pearson_delta_top", "r2_delta_systema", "de_direction"]], 1.0)
    assert np.allclose(ours["energy"], 0.0)  # the same cells
    summary = scdiff.perturb.summarize(table)
    assert list(summary.index) == ["scdiff", "no_change", "mean_perturbation", "additive", "linear",
                                   "nearest_dose"]


def test_evaluate_errors_name_the_problem(sim):
    train, test = sim
    real = test[test.obs["holdout"] == "combination"]
    with pytest.raises(scdiff.InputError, match="generated lacks the condition"):
        evaluate_perturbation(real, test[test.obs["holdout"] == "dose"], train=train)
    with pytest.raises(scdiff.InputError, match="lacks the obs column"):
        evaluate_perturbation(real, None, train=train, design=Design(perturbation="treatment"))


def test_r2_score():
    assert r2_score(np.array([1.0, 2, 3]), np.array([2.0, 2, 2])) == pytest.approx(0.0)


@pytest.fixture(scope="module")
def drug_model(sim):
    train, _ = sim
    small = train[:, :60].copy()
    model = scdiff.ConditionalDiffusion(small, condition=["cell_type", "drug"], dose="dose",
                                        width=32, depth=1, n_genes=60, space="gene")
    model.train(steps=20, batch_size=64, progress=False)
    return model, small


def test_model_pairs_dose_with_drug_and_samples_unseen_combinations(drug_model):
    model, _ = drug_model
    assert model.network_config["dose_encoder"] == "sigmoid"
    assert model.network_config["dose_pairs"] == [1]
    fake = model.sample(30, condition={"cell_type": "type_2", "drug": "drugB"}, dose={"dose": 250.0},
                        guidance={"drug": 2.0, "cell_type": 1.0})
    assert (fake.obs["drug"] == "drugB").all() and (fake.obs["dose"] == 250.0).all()
    with pytest.warns(UserWarning, match=r"training range \[0, 1000\]"):
        model.sample(5, condition={"drug": "drugA"}, dose={"dose": 5000.0})


def test_translation_keeps_identity_at_low_strength(drug_model):
    model, small = drug_model
    ctrl = small[small.obs["drug"] == "control"][:40]
    low = model.sample(from_=ctrl, condition={"drug": "drugA"}, dose={"dose": 100.0}, strength=0.1)
    high = model.sample(from_=ctrl, condition={"drug": "drugA"}, dose={"dose": 100.0}, strength=1.0)
    src = ctrl.X.toarray()
    dist = lambda a: float(np.mean((np.asarray(a.X) - src) ** 2))  # noqa: E731
    assert dist(low) < dist(high)
    assert (low.obs["cell_type"].astype(str).to_numpy() == ctrl.obs["cell_type"].astype(str).to_numpy()).all()
    assert (low.obs["drug"] == "drugA").all() and low.uns["scdiff"]["strength"] == 0.1
    with pytest.raises(scdiff.InputError, match="strength"):
        model.sample(from_=ctrl, strength=1.5)


def test_translation_by_inversion(drug_model):
    model, small = drug_model
    ctrl = small[small.obs["drug"] == "control"][:20]
    out = model.sample(from_=ctrl, condition={"drug": "drugA"}, dose={"dose": 100.0}, strength=0.5,
                       invert=True, steps=20, zeros="gene")
    again = model.sample(from_=ctrl, condition={"drug": "drugA"}, dose={"dose": 100.0}, strength=0.5,
                         invert=True, steps=20, zeros="gene", seed=7)
    np.testing.assert_array_equal(out.X, again.X)  # deterministic: each cell's own noise, no draw
    assert out.uns["scdiff"]["invert"] is True and (out.obs["drug"] == "drugA").all()
    with pytest.raises(scdiff.InputError, match=r"invert=True carries given cells .* needs from_"):
        model.sample(10, invert=True)


def test_dose_response_table_and_plot(drug_model, tmp_path):
    model, _ = drug_model
    table = scdiff.perturb.dose_response(model, condition={"cell_type": "type_0", "drug": "drugA"},
                                         genes=3, n_cells=20, doses=[0.0, 10.0, 100.0])
    assert table.shape == (3, 3) and table.index.name == "dose"
    assert list(table.index) == [0.0, 10.0, 100.0]
    scdiff.pl.dose_response(table, show=False, save=tmp_path / "dr.png")
    assert (tmp_path / "dr.png").stat().st_size > 0
    with pytest.raises(scdiff.InputError, match="not among the model's genes"):
        scdiff.perturb.dose_response(model, genes=["nope"])


def test_cli_dose_response_and_translation(tiny_run, tmp_path):
    from scdiff.cli._app import app

    path, adata = tiny_run
    runner = CliRunner()
    out = tmp_path / "dr.csv"
    res = runner.invoke(app, ["dose-response", str(path), "--condition", "cell_type=t0",
                              "--doses", "0,1,10", "--n-genes", "4", "--n-cells", "10",
                              "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    table = pd.read_csv(out, index_col=0)
    assert table.shape == (3, 4) and out.with_suffix(".png").exists()
    src = tmp_path / "src.h5ad"
    adata.write_h5ad(src)
    gen = tmp_path / "gen.h5ad"
    res = runner.invoke(app, ["sample", str(path), "--from", str(src), "--dose", "dose=10",
                              "--strength", "0.3", "--out", str(gen), "--quiet"])
    assert res.exit_code == 0, res.output
    fake = ad.read_h5ad(gen)
    assert fake.n_obs == adata.n_obs and (fake.obs["dose"] == 10.0).all()
    res = runner.invoke(app, ["sample", str(path), "--from", str(src), "--dose", "dose=10", "--invert",
                              "--out", str(tmp_path / "inv.h5ad"), "--quiet"])
    assert res.exit_code == 0 and ad.read_h5ad(tmp_path / "inv.h5ad").uns["scdiff"]["invert"]
    res = runner.invoke(app, ["sample", str(path), "--invert", "--out", str(tmp_path / "no.h5ad")])
    assert res.exit_code == 1 and "--invert" in res.output and "--from" in res.output
    assert not (tmp_path / "no.h5ad").exists()


def _perturbation_benchmark():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "data_examples" / "perturbation_benchmark.py"
    spec = importlib.util.spec_from_file_location("perturbation_benchmark", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_ceilings_rank_truth_above_the_additive_oracle_above_the_additive_baseline():
    """perturbation_benchmark --ceilings: what the held-out combination allows at best."""
    got = _perturbation_benchmark().ceilings(per_group=2).set_index("method")["r2_delta_top"]
    assert list(got.index) == ["truth", "additive oracle"]
    # the truth is limited only by the 100 real cells per dose; the oracle also by what
    # training data cannot show; the plain additive baseline scores 0.45 on this split
    assert 0.85 < got["truth"] <= 1.0
    assert 0.6 < got["additive oracle"] < got["truth"] - 0.05


def test_pair_oracles_cover_every_pair_and_the_oracle_never_beats_the_truth():
    """perturbation_benchmark --pair-oracles: how much the bar depends on the held-out pair."""
    got = _perturbation_benchmark().pair_oracles(per_group=2)
    assert len(got) == 6 and set(got["drug"]) == {"drugA", "drugB"}
    assert (got["additive_oracle"] <= got["truth"] + 1e-9).all()
    assert got["additive_oracle"].max() - got["additive_oracle"].min() > 0.2  # the pair matters


def test_low_dose_scores_measure_the_control_mean_more_than_the_response():
    """perturbation_benchmark --low-dose: at dose 10 the top genes barely respond."""
    got = _perturbation_benchmark().low_dose_noise().set_index("dose")
    assert list(got.index) == [10.0, 50.0, 100.0, 500.0, 1000.0]
    share = got["true_share_of_ss"]
    assert share[10.0] < 0.1 < 0.8 < share[500.0]
    assert got["true_change_below_0.05"][10.0] > 10 and got["true_change_below_0.05"][1000.0] == 0
    assert (got["median_true_change"].diff().dropna() > 0).all()


def test_top_de_genes_ranks_by_welch_t_not_by_the_raw_change():
    from scdiff.perturb._metrics import top_de_genes

    delta = np.array([1.0, 0.5, -0.8, 0.0])
    var = np.array([100.0, 0.01, 0.04, 1.0])  # gene 0 changes most but is noisiest
    # t = delta / sqrt(var / 10 + 0.01 / 10): 0.316, 11.18, -11.31, 0
    np.testing.assert_array_equal(top_de_genes(delta, var, 10, np.full(4, 0.01), 10, 3), [2, 1, 0])


def test_unseen_combination_warns_and_points_to_per_attribute_guidance(drug_model):
    model, small = drug_model
    ask = dict(condition={"cell_type": "type_2", "drug": "drugB"}, dose={"dose": 250.0})
    # the default (a mean model composes the attributes): a warning, no guidance advice
    unseen = r"never seen in training \(cell_type=type_2, drug=drugB\)"
    with pytest.warns(UserWarning, match=unseen) as caught:
        model.sample(5, **ask)
    assert len(caught) == 1 and "a weight per attribute" not in str(caught[0].message)
    # without it, one guidance number for every attribute gets the advice
    plain = scdiff.ConditionalDiffusion(small, condition=["cell_type", "drug"], dose="dose", additive=False,
                                        width=32, depth=1, n_genes=60, space="gene")
    plain.train(steps=5, batch_size=64, progress=False)
    with pytest.warns(UserWarning, match=r"never seen in training \(cell_type=type_2, drug=drugB\).*"
                                         r"a weight per attribute composes them") as caught:
        plain.sample(5, **ask)
    assert len(caught) == 1, [str(w.message) for w in caught]
    with pytest.warns(UserWarning, match="never seen in training") as caught:
        plain.sample(5, guidance={"cell_type": 1, "drug": 1.5}, **ask)
    assert "a weight per attribute" not in str(caught[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a measured combination: no warning at all
        model.sample(5, condition={"cell_type": "type_0", "drug": "drugB"}, dose={"dose": 250.0})
