"""A user's week (issue 17): guidance that cannot leave the data's range, files others can
read, progress in batch logs, scanpy round trips, leftovers, and advice that fits the data."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from typer.testing import CliRunner

import scdiff
from scdiff.cli import app
from tests.conftest import make_counts

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained():
    """A small gene-space model trained on counts with an int and a bool condition (the guard
    per gene and the Poisson layer are gene space's; tests/test_space.py has the latent's)."""
    a = make_counts(n_per_type=40, n_genes=30, seed=41)
    a.obs["batch"] = np.tile([1, 2], a.n_obs // 2).astype(np.int64)
    a.obs["treated"] = np.tile([True, False, False], a.n_obs // 3)
    model = scdiff.ConditionalDiffusion(a, condition=["cell_type", "batch", "treated"], width=32, depth=1,
                                        space="gene")
    return model.train(steps=80, batch_size=32, progress=False), a


# -- guidance ----------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0, 1e6, {"cell_type": -0.5}])
def test_guidance_needs_finite_weights_at_least_zero(trained, bad):
    with pytest.raises(scdiff.InputError, match="needs finite weights >= 0"):
        trained[0].sample(5, steps=2, guidance=bad)


@pytest.mark.parametrize("weight", [3.0, 5.0, 10.0])
def test_large_guidance_stays_within_each_genes_training_range(trained, weight):
    model, a = trained
    top = np.asarray(model.preprocessor.max)
    fake = model.sample(300, steps=20, guidance=weight, seed=1)
    assert fake.uns["scdiff"]["clip"] is True
    assert np.isfinite(fake.X).all() and (fake.X <= top + 1e-4).all() and (fake.X >= 0).all()
    counts = fake.layers["counts"]
    assert np.isfinite(counts).all() and (counts == np.round(counts)).all()


def test_without_the_guard_large_guidance_leaves_the_range(trained):
    """What the guard prevents (so the test above can fail)."""
    model, _ = trained
    fake = model.sample(300, steps=20, guidance=10.0, seed=1, clip=False)
    assert (fake.X > np.asarray(model.preprocessor.max) + 1e-4).any()


def test_guidance_one_is_not_clipped_by_default(trained):
    model, _ = trained
    plain = model.sample(50, steps=10, seed=2)
    assert plain.uns["scdiff"]["clip"] is False
    np.testing.assert_array_equal(plain.X, model.sample(50, steps=10, seed=2, clip=False).X)


# -- files others can read ---------------------------------------------------------------------
@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600)])
def test_outputs_and_runs_follow_the_umask(tmp_path, mask, mode):
    code = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(ROOT)!r})
        os.umask({mask})
        import scdiff
        from tests.conftest import make_counts
        m = scdiff.ConditionalDiffusion(make_counts(seed=1), condition="cell_type", width=8, depth=1)
        m.train(steps=2, progress=False).save({str(tmp_path / "run")!r})
        scdiff.data.write_h5ad(m.sample(4, steps=2), {str(tmp_path / "gen.h5ad")!r})
        m.sample_to_h5ad({str(tmp_path / "big.h5ad")!r}, 6, chunk_size=4, steps=2)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "SCDIFF_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    files = [tmp_path / "gen.h5ad", tmp_path / "big.h5ad", *(tmp_path / "run").iterdir()]
    assert {f.name: stat.S_IMODE(f.stat().st_mode) for f in files} == {f.name: mode for f in files}


# -- progress in batch logs --------------------------------------------------------------------
def test_plain_progress_lines_when_not_on_a_terminal(tmp_path, monkeypatch):
    monkeypatch.setenv("SCDIFF_PROGRESS_EVERY", "0")
    make_counts(seed=5).write_h5ad(tmp_path / "d.h5ad")
    res = CliRunner().invoke(app, ["train", str(tmp_path / "d.h5ad"), "-c", "cell_type", "--steps", "40",
                                   "--out", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    lines = [ln for ln in res.output.splitlines() if ln.startswith("training: ")]
    assert len(lines) >= 2 and lines[-1].startswith("training: 40/40 (100%)")
    assert "loss " in lines[-1] and "cells/s" in lines[-1] and "ETA" in lines[-1]
    quiet = CliRunner().invoke(app, ["train", str(tmp_path / "d.h5ad"), "-c", "cell_type", "--steps", "5",
                                     "--out", str(tmp_path / "q"), "--quiet"])
    assert quiet.exit_code == 0 and "training:" not in quiet.output and "wrote run" not in quiet.output


# -- scanpy round trips ------------------------------------------------------------------------
def test_samples_have_distinct_names_and_concatenate(trained, tmp_path):
    model, a = trained
    one = model.sample(20, steps=2, seed=0)
    two = model.sample(20, steps=2, seed=1)
    other = model.sample(20, steps=2, seed=0, condition={"cell_type": "t1"})
    assert len(set(one.obs_names) | set(two.obs_names) | set(other.obs_names)) == 60
    assert list(one.obs_names) == list(model.sample(20, steps=2, seed=0).obs_names)  # same call, same
    both = ad.concat([one, two])
    both.write_h5ad(tmp_path / "both.h5ad")
    assert scdiff.data.read_input(tmp_path / "both.h5ad").n_obs == 40  # scdiff reads its own file


def test_condition_columns_keep_their_dtype(trained):
    model, a = trained
    fake = model.sample(30, steps=2)
    assert fake.obs["batch"].dtype == np.int64 and set(fake.obs["batch"]) <= {1, 2}
    assert fake.obs["treated"].dtype == bool
    assert list(fake.obs["cell_type"].cat.categories) == ["t0", "t1", "t2"]
    both = ad.concat([a, fake])
    assert both.obs["batch"].nunique() == 2 and both.obs["treated"].nunique() == 2
    assert both.obs["cell_type"].nunique() == 3


def test_int_categories_come_back_as_int_categories():
    a = make_counts(seed=6)
    a.obs["plate"] = pd.Categorical(np.tile([10, 20], a.n_obs // 2))
    model = scdiff.ConditionalDiffusion(a, condition="plate", width=8, depth=1).train(steps=2, progress=False)
    fake = model.sample(10, steps=2)
    assert list(fake.obs["plate"].cat.categories) == [10, 20]
    assert ad.concat([a, fake]).obs["plate"].nunique() == 2


def test_the_output_says_its_scale_and_holds_counts_where_known(trained):
    model, _ = trained  # trained on counts
    fake = model.sample(20, steps=2)
    info = fake.uns["scdiff"]
    assert info["space"] == "log1p_cp10k" and info["input_scale"] == "counts"
    assert set(info["layers"]) == {"counts"} and "Poisson" in info["layers"]["counts"]
    counts = fake.layers["counts"]
    assert (counts == np.round(counts)).all() and (counts >= 0).all()
    assert fake.X.max() < 20 and counts.max() > fake.X.max()  # X is the log scale
    swapped = model.sample(20, steps=2, counts=True)
    assert swapped.uns["scdiff"]["space"] == "counts" and set(swapped.layers) == {"log1p"}
    np.testing.assert_array_equal(swapped.X, fake.layers["counts"])
    log = make_counts(seed=7)
    log.X = scdiff.data.log_normalize(log.X)
    no_library = scdiff.ConditionalDiffusion(log, condition="cell_type", width=8, depth=1)
    out = no_library.train(steps=2, progress=False).sample(5, steps=2)
    assert not out.layers and out.uns["scdiff"]["input_scale"] == "log"


def test_evaluate_warns_when_real_cells_are_the_training_cells(trained):
    model, a = trained
    real = a.copy()
    real.X = scdiff.data.log_normalize(real.X)
    fake = model.sample(like=real, steps=5)
    with pytest.warns(scdiff.ScdiffWarning, match=r"about 100% of the real cells are cells the model"):
        scdiff.evaluate(real, fake, condition="cell_type", n_pcs=5)
    with pytest.warns(scdiff.ScdiffWarning, match="of the real cells are also in train"):
        scdiff.evaluate(real, fake, condition="cell_type", n_pcs=5, train=real)
    held = make_counts(n_per_type=40, n_genes=30, seed=42)
    held.obs_names = [f"held{i}" for i in range(held.n_obs)]
    held.obs[["batch", "treated"]] = a.obs[["batch", "treated"]].to_numpy()
    held.X = scdiff.data.log_normalize(held.X)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", scdiff.ScdiffWarning)
        scdiff.evaluate(held, model.sample(like=held, steps=5), condition="cell_type", n_pcs=5)


# -- leftovers ---------------------------------------------------------------------------------
@pytest.mark.parametrize("option", [
    ["--steps", "0"], ["--epochs", "0"], ["--batch-size", "0"], ["--lr", "-1"], ["--lr", "nan"],
    ["--seed", "-1"], ["--device", "cuda"], ["--precision", "fp8"], ["--monitor", "1.5"],
    ["--monitor-every", "0"], ["--patience", "0"], ["--threads", "0"],
])
def test_refused_training_options_leave_nothing(tmp_path, option):
    if option == ["--device", "cuda"] and __import__("torch").cuda.is_available():
        pytest.skip("a GPU is here")
    make_counts(seed=8).write_h5ad(tmp_path / "d.h5ad")
    res = CliRunner().invoke(app, ["train", str(tmp_path / "d.h5ad"), "-c", "cell_type",
                                   "--out", str(tmp_path / "run"), *option])
    assert res.exit_code == 1, res.output
    assert res.output.startswith("error: ") and len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_an_interrupted_evaluation_report_leaves_no_half_report(tmp_path, monkeypatch):
    from scdiff import _report

    a, b = make_counts(seed=9), make_counts(seed=10)
    for x in (a, b):
        x.X = scdiff.data.log_normalize(x.X)
    table = scdiff.evaluate(a, b, condition="cell_type", n_pcs=5)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(_report, "_figures", interrupted)
    with pytest.raises(KeyboardInterrupt):
        scdiff.write_report(tmp_path / "rep", a, b, table, condition="cell_type")
    assert not (tmp_path / "rep").exists() and not list(tmp_path.iterdir())
    monkeypatch.undo()
    done = scdiff.write_report(tmp_path / "rep", a, b, table, condition="cell_type")
    assert done.exists() and (tmp_path / "rep" / "metrics.csv").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["rep"]  # no build folder left behind


def test_an_interrupted_overwrite_leaves_no_old_model(tmp_path, monkeypatch):
    import scdiff.model._fit as fit
    from tests.test_resume import _stop_after

    make_counts(seed=11).write_h5ad(tmp_path / "d.h5ad")
    run = tmp_path / "run"
    scdiff.commands.train(tmp_path / "d.h5ad", condition="cell_type", out=run, steps=10, progress=False)
    assert (run / "config.json").exists()
    monkeypatch.setattr(fit, "graceful_stop", lambda: _stop_after(5))
    with pytest.raises(scdiff.TrainingInterrupted):
        scdiff.commands.train(tmp_path / "d.h5ad", condition="cell_type", out=run, steps=50,
                              overwrite=True, progress=False)
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.safetensors"]
    with pytest.raises(scdiff.RunError, match="not a finished scdiff run"):
        scdiff.ConditionalDiffusion.load(run)


# -- advice that fits the data -----------------------------------------------------------------
def _train(a, **kw):
    return scdiff.ConditionalDiffusion(a, condition="cell_type", width=8, depth=1, **kw)


def test_small_negatives_get_the_clip_advice_and_the_flag_works():
    a = make_counts(seed=12, sparse=False)
    a.X = np.log1p(a.X).astype(np.float32)
    a.X[0, :3] = -0.016  # smoothing left a few tiny negatives (as in krumsiek11)
    with pytest.raises(scdiff.InputError, match=r"small negative values .* pass clip_negative=True"):
        _train(a)
    model = _train(a, clip_negative=True)
    assert model.preprocessor.clip_negative and model.train(steps=2, progress=False).is_trained
    z = make_counts(seed=12, sparse=False)
    z.X = (z.X - z.X.mean(0)) / (z.X.std(0) + 1)  # z-scored: the other advice
    with pytest.raises(scdiff.InputError, match="looks scaled"):
        _train(z)


def test_log2_data_are_recognised():
    a = make_counts(seed=13, sparse=False)
    cp10k = a.X / a.X.sum(1, keepdims=True) * 1e4
    a.X = np.log2(1 + cp10k).astype(np.float32)
    with pytest.raises(scdiff.InputError, match=r"looks like log2\(1 \+ x\).*multiply it by ln 2"):
        _train(a)
    a.X = (a.X * np.log(2)).astype(np.float32)  # the advice followed: natural log
    assert _train(a).preprocessor.input_scale == "log"


def test_an_all_zero_matrix_is_refused():
    a = make_counts(seed=14)
    a.X = sp.csr_matrix(a.shape, dtype=np.float32)
    with pytest.raises(scdiff.InputError, match="holds only zeros"):
        _train(a)


def test_config_json_with_a_run_id_and_sketch(trained, tmp_path):
    model, a = trained
    path = model.save(tmp_path / "run")
    config = json.loads((path / "config.json").read_text())
    assert len(config["run_id"]) == 12 and config["training_cells"]["n"] == a.n_obs
    assert scdiff.ConditionalDiffusion.load(path).run_id == config["run_id"]
