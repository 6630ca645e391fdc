"""Property-based checks (hypothesis) of the loaders, the condition/dose encoding and the CLI's
option parsing."""

from __future__ import annotations

import json
import string

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pandas._libs.parsers import STR_NA_VALUES
from typer.testing import CliRunner

import scdiff
from scdiff import InputError
from scdiff.cli import app
from scdiff.data import ConditionEncoder, read_input

names = st.text(string.ascii_letters + string.digits + "_ +-/", min_size=1, max_size=12).filter(
    lambda s: s.strip() == s)
slow = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@slow
@given(
    n_cells=st.integers(2, 20),
    genes=st.lists(st.text(string.ascii_letters, min_size=1, max_size=6), min_size=1, max_size=8,
                   unique=True),
    # pandas reads "NA", "NULL", "nan"... as missing, which training then refuses by name
    labels=st.lists(names.filter(lambda s: s not in STR_NA_VALUES), min_size=2, max_size=4, unique=True),
    data=st.data(),
)
def test_tables_load_as_features_and_conditions(tmp_path, n_cells, genes, labels, data):
    values = data.draw(st.lists(st.lists(st.integers(0, 50), min_size=len(genes), max_size=len(genes)),
                                min_size=n_cells, max_size=n_cells))
    cell_type = [labels[i % len(labels)] for i in range(n_cells)]
    frame = pd.DataFrame(values, columns=genes).assign(cell_type=cell_type)
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    a = read_input(path, conditions=["cell_type"])
    assert list(a.var_names) == genes and a.n_obs == n_cells
    assert a.obs.cell_type.astype(str).tolist() == cell_type
    assert np.array_equal(a.X, np.asarray(values, dtype=np.float32))


@slow
@given(st.lists(names, min_size=2, max_size=6, unique=True), st.data())
def test_encoding_roundtrips_categories_and_doses(cats, data):
    n = 3 * len(cats)
    labels = [cats[i % len(cats)] for i in range(n)]
    doses = data.draw(st.lists(st.floats(0, 1e4, allow_nan=False), min_size=n, max_size=n))
    obs = pd.DataFrame({"c": labels, "d": doses})
    enc = ConditionEncoder.fit(obs, "c", "d")
    codes, tdoses = enc.encode(obs)
    back = enc.to_obs(pd.DataFrame({"c": [enc.categories[0][k] for k in codes[:, 0]], "d": doses}))
    assert back.c.astype(str).tolist() == labels
    assert np.all(np.isfinite(tdoses)) and tdoses.min() >= 0 and tdoses.max() <= 1 + 1e-6
    order = np.argsort(doses, kind="stable")
    assert np.all(np.diff(tdoses[order, 0]) >= -1e-7)  # the transform keeps dose order
    same = ConditionEncoder.from_config(json.loads(json.dumps(enc.to_config())))
    assert np.array_equal(same.encode(obs)[0], codes)


@slow
@given(st.text(max_size=15))
def test_unknown_values_always_name_the_valid_ones(value):
    obs = pd.DataFrame({"c": ["a", "a", "b", "b"]})
    enc = ConditionEncoder.fit(obs, "c", None)
    if value in ("a", "b"):
        return
    with pytest.raises(InputError, match="valid values of 'c' are: a, b"):
        enc.encode(pd.DataFrame({"c": [value]}))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    key=st.sampled_from(["cell_type", "batch", "dose"]),
    value=st.text(string.ascii_letters + string.digits + " +-.=", max_size=10),
    n=st.integers(-3, 3),
)
def test_cli_sample_options_never_traceback(tiny_run, tmp_path, key, value, n):
    out = tmp_path / "gen.h5ad"
    if out.exists():
        out.unlink()
    opt = "--dose" if key == "dose" else "--condition"
    res = CliRunner().invoke(app, ["sample", str(tiny_run[0]), "--out", str(out), opt, f"{key}={value}",
                                   "--n-cells", str(n), "--steps", "2", "--quiet"])
    assert "Traceback" not in res.output
    if res.exit_code == 0:  # the request was valid: the cells asked for were written
        import anndata as ad

        written = ad.read_h5ad(out)
        assert written.n_obs == n and (key == "dose" or (written.obs[key] == value).all())
    else:
        assert res.exit_code in (1, 2) and res.output.strip()


def test_major_version_change_warns(tiny_run, tmp_path):
    path, _ = tiny_run
    copy = tmp_path / "copy"
    copy.mkdir()
    for p in path.iterdir():
        (copy / p.name).write_bytes(p.read_bytes())
    cfg = json.loads((copy / "config.json").read_text())
    cfg["versions"]["torch"] = "1.13.0"
    (copy / "config.json").write_text(json.dumps(cfg))
    with pytest.warns(UserWarning, match="torch 1.13.0"):
        scdiff.ConditionalDiffusion.load(copy)
