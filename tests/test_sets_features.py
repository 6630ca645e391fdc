"""Perturbations nobody measured (issue 20): drugs described by features, sets of drugs in
one cell, from the encoding to the network, the API and the command line."""

from __future__ import annotations

import json
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

import scdiff
from scdiff import InputError
from scdiff.cli import app
from scdiff.data import ConditionEncoder
from scdiff.data._features import described
from scdiff.data._sets import canonical, member_doses, members
from scdiff.diffusion._sampler import _mask_conditions
from scdiff.nn import ConditionalMLP, FeatureEmbedding
from scdiff.train import drop_conditions

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


FEATURES = pd.DataFrame({"target": [1.0, 0.0, 1.0, 0.5], "potency": [0.0, 1.0, 1.0, 0.2]},
                        index=pd.Index(["a", "b", "c", "d"], name="drug"))


def _screen(n: int = 12, seed: int = 0) -> ad.AnnData:
    """Two lines; control, drugs a, b, c at two doses and the pair a+b; d is never measured."""
    rng = np.random.default_rng(seed)
    rows = []
    for line in ("l0", "l1"):
        rows += [(line, "control", "0")] * n
        for drug in ("a", "b", "c"):
            rows += [(line, drug, "10")] * n + [(line, drug, "100")] * n
        rows += [(line, "a+b", "10+100")] * n
    obs = pd.DataFrame(rows, columns=["cell_line", "drug", "dose"])
    obs.index = [f"c{i}" for i in range(len(obs))]
    x = rng.poisson(2.0, size=(len(obs), 40)).astype(np.float32)
    return ad.AnnData(X=x, obs=obs)


@pytest.fixture(scope="module")
def trained():
    model = scdiff.ConditionalDiffusion(_screen(), condition=["cell_line", "drug"], dose="dose",
                                        condition_features={"drug": FEATURES}, width=32, depth=1)
    model.train(steps=30, batch_size=32, progress=False, seed=0)
    return model


# -- the spelling of sets ------------------------------------------------------------------------
def test_members_and_doses_of_a_set():
    assert members("a + b") == ["a", "b"] and members("control") == ["control"]
    assert member_doses("10+100", 2) == [10.0, 100.0] and member_doses(5, 3) == [5.0] * 3
    assert member_doses("1e+06", 1) == [1e6]
    assert canonical(["b", "a"], [1.0, 20.0]) == ("a+b", "20+1")
    with pytest.raises(InputError, match="3 doses for a set of 2"):
        member_doses("1+2+3", 2)
    with pytest.raises(InputError, match="names a member twice"):
        members("a+a")
    with pytest.raises(InputError, match="empty member"):
        members("a+")


def test_encoder_gives_a_set_one_column_per_member_in_any_order():
    obs = _screen(2).obs
    enc = ConditionEncoder.fit(obs, ["cell_line", "drug"], "dose")
    enc.dose_pairs = [1]
    assert enc.categories[1] == ["a", "b", "c", "control"] and enc.key_slots == [1, 2]
    frame = pd.DataFrame({"cell_line": ["l0", "l0", "l1"], "drug": ["a+b", "b+a", "c"],
                          "dose": ["10+100", "100+10", "100"]})
    codes, doses = enc.encode(frame)
    assert codes.shape == (3, 3) and doses.shape == (3, 2)
    null = len(enc.categories[1])
    assert codes.tolist() == [[0, 0, 1], [0, 1, 0], [1, 2, null]]
    # each member keeps its own dose, whatever the order: a at 10, b at 100
    np.testing.assert_allclose(sorted(zip(codes[0, 1:], doses[0], strict=True)),
                               sorted(zip(codes[1, 1:], doses[1], strict=True)))
    assert np.isnan(doses[2, 1]) and doses[2, 0] == pytest.approx(1.0)  # 100 is the largest dose
    out = enc.to_obs(frame)
    assert out["drug"].astype(str).tolist() == ["a+b", "b+a", "c"]
    assert out["dose"].tolist() == ["10+100", "100+10", "100"]


def test_a_plus_inside_a_name_is_not_a_set():
    obs = pd.DataFrame({"cell_type": ["CD14+ Monocyte", "CD4+/CD25 T Reg", "B"] * 4,
                        "drug": ["a", "b", "a+b"] * 4})
    enc = ConditionEncoder.fit(obs, ["cell_type", "drug"], None)
    assert enc.categories == [["B", "CD14+ Monocyte", "CD4+/CD25 T Reg"], ["a", "b"]]
    assert enc.key_slots == [1, 2]
    codes, _ = enc.encode(obs.iloc[:3])
    assert codes[:, 0].tolist() == [1, 2, 0]
    # members never given alone are a set where the doses say so, one per member
    paired = pd.DataFrame({"drug": ["control", "x+y", "control", "x+y"], "dose": ["0", "1+2", "0", "3+4"]})
    assert ConditionEncoder.fit(paired, "drug", "dose").key_slots == [2]
    named = pd.DataFrame({"drug": ["control", "x+y", "control", "x+y"], "dose": ["0", "1", "0", "3"]})
    assert ConditionEncoder.fit(named, "drug", "dose").categories == [["control", "x+y"]]


@pytest.mark.parametrize(("frame", "match"), [
    ({"cell_line": ["l0"], "drug": ["a+b+c"], "dose": ["1+1+1"]}, "sets of at most 2"),
    ({"cell_line": ["l0"], "drug": ["a+z"], "dose": ["1+1"]}, "'z' in adata.obs was not seen"),
    ({"cell_line": ["l0"], "drug": ["a+b"], "dose": ["1+2+3"]}, "3 doses for a set of 2"),
])
def test_encoder_refuses_sets_it_cannot_encode(frame, match):
    enc = ConditionEncoder.fit(_screen(2).obs, ["cell_line", "drug"], "dose")
    enc.dose_pairs = [1]
    with pytest.raises(InputError, match=match):
        enc.encode(pd.DataFrame(frame))


def test_a_set_dose_without_a_set_condition_is_refused():
    data = _screen(3)
    data.obs["drug"] = data.obs["drug"].replace({"a+b": "a"})
    with pytest.raises(InputError, match="no condition holds sets"):
        scdiff.ConditionalDiffusion(data, condition=["cell_line", "drug"], dose="dose")


# -- the network ---------------------------------------------------------------------------------
def _randomised(net: torch.nn.Module) -> torch.nn.Module:
    """Every weight drawn, so that the zero-initialised gates let the conditions through."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.3)
    return net.eval()


def test_a_set_is_the_sum_of_its_members_in_any_order():
    table = {"table": FEATURES.to_numpy().tolist(), "seen": [1, 1, 1, 0]}
    net = _randomised(ConditionalMLP(10, n_categories=[2, 4], n_doses=1, width=16, depth=1,
                                     dose_encoder="sigmoid", dose_pairs=[1], additive=True,
                                     slots=[1, 2], features=[None, table]))
    assert net.null_codes.tolist() == [2, 4, 4]
    assert net.cat_columns == [0, 1, 1] and net.dose_columns == [0, 0]
    x, t = torch.randn(1, 10), torch.tensor([500])
    ab = net(x, t, torch.tensor([[0, 0, 1]]), torch.tensor([[0.2, 0.9]]))
    ba = net(x, t, torch.tensor([[0, 1, 0]]), torch.tensor([[0.9, 0.2]]))
    torch.testing.assert_close(ab, ba)
    # an empty second slot is no member: the cell holds the first drug alone
    single = net(x, t, torch.tensor([[0, 0, 4]]), torch.tensor([[0.2, float("nan")]]))
    other = net(x, t, torch.tensor([[0, 0, 4]]), torch.tensor([[0.2, 0.7]]))
    torch.testing.assert_close(single, other)
    assert not torch.allclose(single, ab)


def test_a_feature_table_needs_a_row_per_category():
    with pytest.raises(ValueError, match="4 rows for 5 categories"):
        ConditionalMLP(10, n_categories=[5], features=[{"table": FEATURES.to_numpy().tolist(),
                                                        "seen": [1, 1, 1, 0]}])


def test_a_plain_network_keeps_its_weights_and_layout():
    net = ConditionalMLP(10, n_categories=[3], n_doses=1, width=16, depth=1, dose_encoder="sigmoid",
                         dose_pairs=[0])
    assert net.cat_columns == [0] and net.dose_columns == [0]
    assert "embeddings.0.weight" in net.state_dict() and "dose_encoders.0.slope" in net.state_dict()


def test_an_unmeasured_category_is_its_features_alone():
    emb = FeatureEmbedding([[1.0, 0.0], [0.0, 1.0]], [1, 0], 8)
    with torch.no_grad():
        emb.residual.weight.normal_()
    emb.eval()
    codes = torch.tensor([0, 1, 2])
    out = emb(codes)
    torch.testing.assert_close(out[1], emb.map(emb.table[1]))  # unseen: no residual
    torch.testing.assert_close(out[0], emb.map(emb.table[0]) + emb.residual.weight[0])
    torch.testing.assert_close(out[2], emb.map(torch.zeros(2)) + emb.residual.weight[2])  # null token
    emb.train()
    torch.manual_seed(0)
    kept = emb.keep(torch.zeros(2000, dtype=torch.long))
    assert 0.4 < kept.mean().item() < 0.6  # half the rows train the map alone
    assert emb.keep(torch.full((50,), 2)).min().item() == 1.0


def test_a_set_is_dropped_whole_for_guidance():
    cats = torch.tensor([[0, 1, 2]] * 400)
    doses = torch.tensor([[0.5, 0.5]] * 400)
    null = torch.tensor([2, 4, 4])
    gen = torch.Generator().manual_seed(0)
    c, d = drop_conditions(cats, doses, null, 0.5, gen, ([0, 1, 1], [0, 0]))
    assert torch.equal(c[:, 1] == 4, c[:, 2] == 4)  # both slots, or neither
    assert torch.equal(torch.isnan(d[:, 0]), torch.isnan(d[:, 1]))
    assert 0.3 < (c[:, 1] == 4).float().mean() < 0.7
    kept, kd = _mask_conditions(cats[:1], doses[:1], [True, False, True], null, ([0, 1, 1], [0, 0]))
    assert kept.tolist() == [[0, 4, 4]] and not torch.isnan(kd).any()


# -- features ------------------------------------------------------------------------------------
def test_feature_rows_are_standardised_and_unmeasured_rows_added():
    extra, matrix, seen = described(FEATURES, "drug", ["a", "b", "c", "control"], ["control"])
    assert extra == ["d"] and seen == [1, 1, 1, 1, 0] and matrix.shape == (5, 2)
    np.testing.assert_allclose(matrix[3], 0.0)  # the untreated category: no features
    z = (FEATURES["target"] - FEATURES["target"].mean()) / FEATURES["target"].std(ddof=0)
    np.testing.assert_allclose(matrix[[0, 1, 2, 4], 0], z.to_numpy(), rtol=1e-6)


@pytest.mark.parametrize(("table", "match"), [
    (FEATURES.drop(index="b"), "no row for 'b'"),
    (FEATURES.assign(name="x"), "non-numeric column 'name'"),
    (FEATURES.assign(potency=[1.0, np.nan, 0.0, 1.0]), "missing values"),
    (pd.concat([FEATURES, FEATURES.iloc[:1]]), "'a' twice"),
])
def test_bad_feature_tables_are_refused(table, match):
    with pytest.raises(InputError, match=match):
        scdiff.ConditionalDiffusion(_screen(3), condition=["cell_line", "drug"], dose="dose",
                                    condition_features={"drug": table})


def test_features_of_a_key_that_is_not_a_condition_are_refused():
    with pytest.raises(InputError, match="'batch', which is not a condition"):
        scdiff.ConditionalDiffusion(_screen(3), condition=["cell_line", "drug"], dose="dose",
                                    condition_features={"batch": FEATURES})


def test_molecules_by_smiles():
    pytest.importorskip("rdkit")
    smiles = pd.DataFrame({"smiles": ["CCO", "c1ccccc1", "CC(=O)O", "CCN"]}, index=["a", "b", "c", "d"])
    model = scdiff.ConditionalDiffusion(_screen(3), condition=["cell_line", "drug"], dose="dose",
                                        smiles={"drug": smiles}, width=16, depth=1)
    table = model.network_config["features"][1]["table"]
    assert len(table) == 5 and len(table[0]) == 512 and model.encoder.unseen[1] == ["d"]
    bad = smiles.assign(smiles=["CCO", "C1CC", "CC(=O)O", "CCN"])
    with pytest.raises(InputError, match=r"SMILES of 'b' \('C1CC'\) is not a valid molecule"):
        scdiff.ConditionalDiffusion(_screen(3), condition=["cell_line", "drug"], dose="dose",
                                    smiles={"drug": bad})


# -- the model, end to end -----------------------------------------------------------------------
def test_an_unmeasured_drug_and_an_unmeasured_pair_can_be_sampled(trained):
    assert trained.encoder.unseen[1] == ["d"]
    with pytest.warns(scdiff.ScdiffWarning, match="drug d never measured: generated from its features"):
        out = trained.sample(20, condition={"cell_line": "l0", "drug": "d"}, dose={"dose": 50}, seed=0)
    assert out.shape == (20, 40) and set(out.obs["drug"].astype(str)) == {"d"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pair = trained.sample(10, condition={"cell_line": "l1", "drug": "c+d"},
                              dose={"dose": "10+100"}, seed=0)
    assert pair.obs["drug"].astype(str).unique().tolist() == ["c+d"]
    assert pair.obs["dose"].unique().tolist() == ["10+100"]
    assert np.isfinite(pair.X).all()


def test_sets_and_features_survive_save_and_load(trained, tmp_path):
    # the measured pair a+b has an interaction in the mean model (codes of its members, sorted)
    pair = pd.DataFrame({"cell_line": ["l0"], "drug": ["b+a"], "dose": ["10+100"]})
    codes, _ = trained.encoder.encode(pair)
    assert trained.network_config["mean"] == {"sets": {"1": [sorted(codes[0, 1:].tolist())]}}
    trained.save(tmp_path / "run")
    loaded = scdiff.ConditionalDiffusion.load(tmp_path / "run")
    assert loaded.encoder.unseen == trained.encoder.unseen and loaded.encoder.key_slots == [1, 2]
    assert torch.equal(loaded.network.mean.interactions["1"].strength.weight,
                       trained.network.mean.interactions["1"].strength.weight)
    kw = dict(condition={"cell_line": "l1", "drug": "a+d"}, dose={"dose": "100+10"}, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.testing.assert_array_equal(loaded.sample(8, **kw).X, trained.sample(8, **kw).X)


def test_the_command_line_takes_features_and_sets(tmp_path):
    _screen().write_h5ad(tmp_path / "screen.h5ad")
    FEATURES.to_csv(tmp_path / "drugs.csv")
    run = tmp_path / "run"
    base = ["train", tmp_path / "screen.h5ad", "-c", "cell_line", "-c", "drug", "--dose", "dose"]
    res = invoke(*base, "--condition-features", f"drug={tmp_path / 'drugs.csv'}", "--steps", 20,
                 "--batch-size", 32, "--out", run, "--quiet")
    assert res.exit_code == 0, res.output
    out = tmp_path / "pair.h5ad"
    res = invoke("sample", run, "-c", "cell_line=l0", "-c", "drug=b+d", "--dose", "dose=10+100",
                 "--n-cells", 6, "--out", out, "--quiet")
    assert res.exit_code == 0, res.output
    assert ad.read_h5ad(out).obs["dose"].astype(str).unique().tolist() == ["10+100"]
    res = invoke("sample", run, "-c", "drug=b+d", "--dose", "dose=10+100+5", "--n-cells", 6,
                 "--out", tmp_path / "bad.h5ad", "--quiet")
    assert res.exit_code == 1 and "3 doses for a set of 2" in res.output
    assert len(res.output.strip().splitlines()) == 1 and not (tmp_path / "bad.h5ad").exists()
    res = invoke(*base, "--condition-features", f"drug={tmp_path / 'none.csv'}", "--out", tmp_path / "r2")
    assert res.exit_code == 1 and "none.csv does not exist" in res.output and not (tmp_path / "r2").exists()
    res = invoke("info", run, "--json")
    assert res.exit_code == 0
    info = json.loads(res.output)
    assert info["unmeasured"] == {"drug": ["d"]} and info["sets"] == {"drug": 2}
    assert info["network"]["features"] == [None, "5 categories x 2 features"]


def test_a_pair_has_a_dose_response_and_a_counterfactual(trained):
    table = scdiff.perturb.dose_response(trained, condition={"cell_line": "l0", "drug": "a+b"},
                                         doses=[0.0, 10.0, 100.0], genes=5, n_cells=10)
    assert list(table.index) == [0.0, 10.0, 100.0] and table.shape[1] == 5 and np.isfinite(table).all().all()
    data = _screen()
    control = data[(data.obs["drug"] == "control").to_numpy()][:6].copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        moved = trained.sample(from_=control, condition={"drug": "a+b"}, dose={"dose": "10+100"},
                               strength=0.5, seed=0)
    assert moved.obs["drug"].astype(str).unique().tolist() == ["a+b"]
    assert moved.obs["cell_line"].astype(str).tolist() == control.obs["cell_line"].astype(str).tolist()


def test_a_set_is_guided_with_its_own_weight(trained):
    kw = dict(condition={"cell_line": "l0", "drug": "a+b"}, dose={"dose": "10+100"}, seed=2)
    plain, guided = trained.sample(8, **kw), trained.sample(8, guidance={"drug": 3.0}, **kw)
    assert np.isfinite(guided.X).all() and not np.allclose(plain.X, guided.X)
