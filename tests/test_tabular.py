"""The tabular mode: which inputs are tables, the column codec (golden values, round
trips), a table model end to end from the API and the CLI, and the table metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.preprocessing import QuantileTransformer
from typer.testing import CliRunner

import scdiff
from scdiff import InputError
from scdiff.cli import app
from scdiff.data import TableCodec, table_kind
from scdiff.data._table import MISSING, from_normal, to_normal
from scdiff.datasets import simulate_clinical
from scdiff.metrics import evaluate_table
from scdiff.metrics._tabular import is_class_column


@pytest.fixture(scope="module")
def clinical():
    return simulate_clinical(n_rows=400, seed=3)


@pytest.fixture(scope="module")
def table_model(clinical):
    model = scdiff.ConditionalDiffusion(clinical, condition="subtype")
    return model.train(steps=60, progress=False)


# -- the quantile transform ----------------------------------------------------------------------
def test_quantile_transform_matches_sklearn_and_inverts():
    x = np.random.default_rng(0).lognormal(0, 1, 500)
    q = np.quantile(x, np.linspace(0, 1, 500))
    ref = QuantileTransformer(n_quantiles=500, output_distribution="normal").fit(x[:, None])
    probe = np.r_[x[:50], [x.min(), x.max(), np.median(x)]]
    assert np.allclose(to_normal(probe, q), ref.transform(probe[:, None])[:, 0], atol=1e-6)
    assert np.allclose(from_normal(to_normal(x, q), q), x, rtol=1e-9)
    assert to_normal(np.array([1e9, -1e9]), q).round(3).tolist() == [5.199, -5.199]


def test_quantile_transform_golden_values_and_spikes():
    q = np.array([0.0, 0.0, 0.0, 1.0, 2.0])  # 60% of the rows at 0: a spike
    z = to_normal(np.array([0.0, 1.0, 2.0]), q)
    assert np.round(z, 4).tolist() == [-0.6745, 0.6745, 5.1993]
    assert from_normal(np.array([-3.0, -0.5, 0.0, 0.6745]), q).round(4).tolist() == [0.0, 0.0, 0.0, 1.0]


# -- which inputs are tables -----------------------------------------------------------------------
def test_table_kind_rule():
    wide = pd.DataFrame(np.random.default_rng(0).poisson(2, (20, 120)),
                        columns=[f"g{i}" for i in range(120)]).assign(cell_type="a")
    assert table_kind(wide, ["cell_type"]) == "expression"
    assert table_kind(wide.iloc[:, 50:], ["cell_type"]) == "tabular"  # 70 columns
    with_text = wide.assign(site="x")
    assert table_kind(with_text, ["cell_type"]) == "tabular"
    gappy = wide.copy()
    gappy["g0"] = gappy["g0"].astype(float).where(gappy.index > 0)
    assert table_kind(gappy, ["cell_type"]) == "tabular"
    assert table_kind(wide, ["cell_type"], "tabular") == "tabular"
    with pytest.raises(InputError, match="kind='table' needs to be one of auto, expression, tabular"):
        table_kind(wide, [], "table")


# -- the codec ---------------------------------------------------------------------------------------
def test_codec_round_trips_every_column_kind(clinical):
    codec = TableCodec.fit(clinical, ["subtype"])
    x = codec.encode(clinical)
    assert x.dtype == np.float32 and x.shape == (len(clinical), len(codec.features))
    assert "bmi (missing)" in codec.features and "smoker=current" in codec.features
    back = codec.decode(x.astype(np.float64), clinical[["subtype"]])
    assert list(back.columns) == list(clinical.columns)
    assert back.dtypes.equals(clinical.dtypes)
    for col in clinical.columns:
        if pd.api.types.is_float_dtype(clinical[col]):
            assert np.allclose(back[col], clinical[col], rtol=1e-6, atol=1e-5, equal_nan=True), col  # float32
        else:
            assert back[col].equals(clinical[col]), col
    assert back["smoker"].cat.ordered and list(back["site"].cat.categories) == \
        list(clinical["site"].cat.categories)
    again = TableCodec.from_config(codec.to_config())
    assert np.array_equal(again.encode(clinical), x)


def test_codec_keeps_bounds_integers_and_missing_categories():
    frame = pd.DataFrame({"n": [1, 5, 9, 3], "v": [-2.5, 0.0, 1.5, 3.0],
                          "c": ["a", None, "b", "a"], "flag": [True, False, True, True]})
    codec = TableCodec.fit(frame)
    assert codec.features == ["n", "v", "c=a", "c=b", f"c={MISSING}", "flag=False", "flag=True"]
    x = np.array([[9.0, -9.0, 0.1, 0.2, 0.9, 0.7, 0.2], [0.3, 9.0, 0.9, 0.0, 0.0, 0.1, 0.8]])
    out = codec.decode(x, pd.DataFrame(index=range(2)))
    assert out["n"].tolist() == [9, 5] and out["n"].dtype == np.int64  # rounded, within [1, 9]
    assert out["v"].tolist() == [-2.5, 3.0]
    assert out["c"].isna().tolist() == [True, False] and out["c"][1] == "a"
    assert out["flag"].tolist() == [False, True] and out["flag"].dtype == bool


@pytest.mark.parametrize("column, message", [
    (pd.to_datetime(["2024-01-01"] * 200), "holds dates or durations"),
    ([f"id{i}" for i in range(200)], "looks like an identifier"),
    ([np.nan] * 200, "holds no values"),
    ([1.0, np.inf] * 100, "holds infinite values"),
])
def test_codec_refuses_columns_it_cannot_model(column, message):
    frame = pd.DataFrame({"x": np.arange(200.0), "bad": column})
    with pytest.raises(InputError, match=message):
        TableCodec.fit(frame)


def test_codec_refuses_a_category_never_seen():
    codec = TableCodec.fit(pd.DataFrame({"c": ["a", "b"], "x": [1.0, 2.0]}))
    with pytest.raises(InputError, match="holds 'z', which the training table never did"):
        codec.encode(pd.DataFrame({"c": ["z"], "x": [1.0]}))


# -- a table model ---------------------------------------------------------------------------------
def test_a_table_model_samples_the_tables_columns(table_model, clinical):
    model = table_model
    assert model.kind == "tabular" and "table of 11 columns" in repr(model)
    fake = model.sample(300, seed=1)
    assert isinstance(fake, pd.DataFrame) and list(fake.columns) == list(clinical.columns)
    assert fake.dtypes.equals(clinical.dtypes)
    for col in ("age", "bmi", "systolic_bp", "crp", "egfr_change", "n_visits"):
        assert fake[col].min() >= clinical[col].min() and fake[col].max() <= clinical[col].max()
    assert (fake["egfr_change"] < 0).any()  # negative values are values, not errors
    assert np.all(np.mod(fake["age"], 1) == 0)
    assert set(fake["smoker"].dropna()) <= {"never", "former", "current"}
    assert fake["bmi"].isna().any() and not fake["bmi"].isna().all()
    assert fake.attrs["scdiff"]["kind"] == "tabular"
    only_c = model.sample(20, condition={"subtype": "C"})
    assert (only_c["subtype"] == "C").all()
    like = model.sample(like=clinical.iloc[:30])
    assert like["subtype"].tolist() == clinical["subtype"].iloc[:30].tolist()


def test_a_table_model_saves_and_samples_the_same(table_model, tmp_path):
    path = table_model.save(tmp_path / "run")
    loaded = scdiff.ConditionalDiffusion.load(path)
    assert loaded.kind == "tabular"
    pd.testing.assert_frame_equal(loaded.sample(50, seed=4), table_model.sample(50, seed=4))
    assert loaded.info()["kind"] == "tabular"


@pytest.mark.parametrize("options, message", [
    ({"counts": True}, "counts=True asks for read counts"),
    ({"zeros": "cell"}, "zeros='cell' shapes the zeros of expression"),
    ({"sparse": True}, "sparse=True is for expression matrices"),
])
def test_a_table_model_refuses_expression_options(table_model, options, message):
    with pytest.raises(InputError, match=message):
        table_model.sample(10, **options)


def test_a_table_model_refuses_translation_and_h5ad(table_model, clinical, tmp_path):
    with pytest.raises(InputError, match="does not translate rows yet"):
        table_model.sample(from_=clinical)
    with pytest.raises(InputError, match="a table model writes .csv or .parquet"):
        table_model.sample_to_file(tmp_path / "x.h5ad", 10)


def test_a_table_refuses_expression_spaces(clinical):
    with pytest.raises(InputError, match="space='latent' is for expression"):
        scdiff.ConditionalDiffusion(clinical, condition="subtype", space="latent")
    with pytest.raises(InputError, match="column 'arm' not found in the table"):
        scdiff.ConditionalDiffusion(clinical, condition="arm")


def test_kind_tabular_reads_an_anndata_as_a_table():
    import anndata as ad

    x = np.random.default_rng(0).normal(size=(80, 4)).astype(np.float32)  # negative: not expression
    a = ad.AnnData(x, obs=pd.DataFrame({"g": ["a", "b"] * 40}, index=[str(i) for i in range(80)]))
    model = scdiff.ConditionalDiffusion(a, condition="g", kind="tabular").train(steps=5, progress=False)
    out = model.sample(6)
    assert list(out.columns) == ["0", "1", "2", "3", "g"]


# -- the command line ----------------------------------------------------------------------------
def test_the_issue_command_trains_on_a_raw_table(tmp_path):
    from sklearn.datasets import load_wine

    wine = load_wine(as_frame=True)
    table = wine.data.assign(label=wine.target).sample(frac=1.0, random_state=0).reset_index(drop=True)
    table.iloc[:120].to_csv(tmp_path / "wine.csv", index=False)
    table.iloc[120:].to_parquet(tmp_path / "held.parquet")
    run = CliRunner()
    res = run.invoke(app, ["train", str(tmp_path / "wine.csv"), "--condition", "label", "--out",
                           str(tmp_path / "run"), "--steps", "30", "--quiet"])
    assert res.exit_code == 0, res.output
    res = run.invoke(app, ["sample", str(tmp_path / "run"), "--like", str(tmp_path / "held.parquet"),
                           "--out", str(tmp_path / "gen.parquet")])
    assert res.exit_code == 0 and "rows x 13 columns" in res.output, res.output
    gen = pd.read_parquet(tmp_path / "gen.parquet")
    assert list(gen.columns) == list(table.columns) and len(gen) == len(table) - 120
    assert gen.dtypes.equals(table.dtypes)
    res = run.invoke(app, ["sample", str(tmp_path / "run"), "--n-cells", "40",
                           "--out", str(tmp_path / "gen.csv")])
    assert res.exit_code == 0
    back = pd.read_csv(tmp_path / "gen.csv")
    assert list(back.columns) == list(table.columns) and back.shape == (40, 14)
    res = run.invoke(app, ["evaluate", str(tmp_path / "held.parquet"), str(tmp_path / "gen.parquet"),
                           "--train", str(tmp_path / "wine.csv"), "--condition", "label",
                           "--out", str(tmp_path / "rep")])
    assert res.exit_code == 0 and "detection_auc" in res.output, res.output
    assert (tmp_path / "rep" / "report.md").exists()
    assert set(pd.read_csv(tmp_path / "rep" / "metrics.csv")["metric"]) >= {"ml_efficacy", "dcr"}
    res = run.invoke(app, ["evaluate", str(tmp_path / "held.parquet"), str(tmp_path / "gen.parquet")])
    assert res.exit_code == 1 and "scoring a table needs --train" in res.output
    res = run.invoke(app, ["sample", str(tmp_path / "run"), "--out", str(tmp_path / "g.h5ad")])
    assert res.exit_code == 1 and "a table model writes .csv or .parquet" in res.output


def test_kind_expression_keeps_the_expression_reading(tmp_path):
    frame = pd.DataFrame(np.random.default_rng(0).gamma(2.0, 300.0, size=(60, 5)),
                         columns=[f"f{i}" for i in range(5)]).assign(label=np.repeat(["a", "b", "c"], 20))
    frame.to_csv(tmp_path / "t.csv", index=False)
    res = CliRunner().invoke(app, ["train", str(tmp_path / "t.csv"), "-c", "label", "--kind", "expression",
                                   "--out", str(tmp_path / "r")])
    said = " ".join(res.output.split())
    assert res.exit_code == 1 and "--kind tabular" in said and "comparable log scales" in said
    assert "sc.pp.log1p" not in said


# -- the metrics ---------------------------------------------------------------------------------
def test_evaluate_table_on_copies_and_on_real_rows(clinical):
    train, test = clinical.iloc[:250], clinical.iloc[250:]
    scores = evaluate_table(test, train.iloc[:150], train=train, target="subtype")
    assert list(scores.columns) == ["generated", "floor"] and scores.attrs["target"] == "subtype"
    copy = scores["generated"]
    assert copy["dcr"] == 0.0 and copy["copy_fraction"] > 0.5  # training rows, released
    assert scores.loc["dcr", "floor"] > 0 and scores.loc["copy_fraction", "floor"] < copy["copy_fraction"]
    same = evaluate_table(test, test, train=train, target="subtype")["generated"]
    assert same["column_shapes"] == pytest.approx(1.0) and same["pair_trends"] == pytest.approx(1.0)
    assert same["detection_auc"] < 0.6
    with pytest.raises(InputError, match="target='nope' is not a column"):
        evaluate_table(test, train, train=train, target="nope")
    with pytest.raises(InputError, match="generated lacks the column"):
        evaluate_table(test, train.drop(columns="crp"), train=train)


def test_class_targets():
    assert is_class_column(pd.Series(["a", "b"])) and is_class_column(pd.Series([True, False]))
    assert not is_class_column(pd.Series(np.arange(50)))


def test_simulate_clinical_is_seeded_and_mixed():
    a, b = simulate_clinical(n_rows=200, seed=5), simulate_clinical(n_rows=200, seed=5)
    pd.testing.assert_frame_equal(a, b)
    assert a["bmi"].isna().any() and (a["egfr_change"] < 0).any()
    assert a["adverse_event"].dtype == bool and a["smoker"].cat.ordered
    with pytest.raises(InputError, match="n_rows=3 needs to be a whole number >= 10"):
        simulate_clinical(n_rows=3)
