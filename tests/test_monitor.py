"""Training monitoring: a small generated sample's MMD to held-out cells, and early stopping."""

import numpy as np
import pandas as pd
import pytest

import scdiff
from scdiff import InputError
from tests.conftest import make_counts


def _model(a):
    return scdiff.ConditionalDiffusion(a, condition="cell_type", width=64, depth=2)


def test_monitor_logs_mmd_that_falls_with_training():
    a = make_counts(n_per_type=60, seed=31)
    model = _model(a).train(steps=200, batch_size=64, progress=False, monitor=0.2, monitor_every=40)
    rows = [r for r in model.log if "mmd" in r]
    assert [r["step"] for r in rows] == [40, 80, 120, 160, 200]
    floor = rows[0]["mmd_floor"]
    assert len({r["mmd_floor"] for r in rows}) == 1 and floor > 0
    # quality rises as training goes on: the gap to the floor shrinks (measured 0.10 -> 0.01)
    assert rows[-1]["mmd"] - floor < 0.5 * (rows[0]["mmd"] - floor)
    frame = pd.DataFrame(model.log)
    assert frame["mmd"].notna().sum() == 5


def test_patience_stops_early_and_monitor_cells_are_held_out():
    a = make_counts(n_per_type=40, seed=32)
    model = _model(a)
    data_before = len(model._data)
    # patience 1 with a learning rate too small to improve: stops at the second evaluation
    model.train(steps=2000, batch_size=32, lr=1e-9, progress=False, monitor=0.25, monitor_every=20,
                patience=1)
    assert model.log[-1]["step"] < 2000 and len(model._data) == data_before
    assert scdiff.ConditionalDiffusion.sample(model, 5, steps=2).n_obs == 5


def test_monitor_with_an_anndata_and_errors(tmp_path):
    a, held = make_counts(seed=33), make_counts(n_per_type=10, seed=34)
    model = _model(a).train(steps=40, batch_size=32, progress=False, monitor=held, monitor_every=20)
    assert sum("mmd" in r for r in model.log) == 2
    path = model.save(tmp_path / "run")
    assert "mmd" in (path / "train_log.csv").read_text().splitlines()[0]
    assert (path / "loss.png").stat().st_size > 0 and scdiff.pl.loss(path, show=False) is not None
    with pytest.raises(InputError, match="fraction between 0 and 0.5"):
        _model(a).train(steps=5, progress=False, monitor=0.9)
    assert np.isfinite([r["loss"] for r in model.log]).all()


def _interrupted_then_resumed(a, run, monkeypatch, stop_after, **kw):
    """Train with an interruption after ``stop_after`` steps, then resume; return the model."""
    import scdiff.model._fit as fit
    from tests.test_resume import _stop_after

    monkeypatch.setattr(fit, "graceful_stop", lambda: _stop_after(stop_after))
    with pytest.raises(scdiff.TrainingInterrupted):
        _model(a).train(checkpoint_dir=run, **kw)
    monkeypatch.undo()
    return _model(a).train(checkpoint_dir=run, resume=True, **kw)


def test_resumed_monitored_run_keeps_its_columns(tmp_path, monkeypatch):
    a = make_counts(n_per_type=40, seed=35)
    kw = dict(steps=100, batch_size=32, progress=False, monitor=0.25, monitor_every=20,
              checkpoint_every=40, seed=1)
    ref = _model(a).train(**kw)
    resumed = _interrupted_then_resumed(a, tmp_path / "run", monkeypatch, 50, **kw)
    assert resumed.log == ref.log  # every row, the mmd columns of the steps before the stop too
    assert [r["step"] for r in resumed.log if "mmd" in r] == [20, 40, 60, 80, 100]
    header = (resumed.save(tmp_path / "done").joinpath("train_log.csv")).read_text().splitlines()[0]
    assert header == "step,loss,grad_norm,lr,mmd,mmd_floor"


def test_resumed_run_keeps_the_monitors_patience(tmp_path, monkeypatch):
    # a learning rate too small to improve: patience 2 stops at the third evaluation (step 60),
    # with or without an interruption after the second
    a = make_counts(n_per_type=40, seed=36)
    kw = dict(steps=200, batch_size=32, lr=1e-9, progress=False, monitor=0.25, monitor_every=20,
              patience=2, seed=2)
    ref = _model(a).train(**kw)
    assert ref.log[-1]["step"] == 60
    resumed = _interrupted_then_resumed(a, tmp_path / "run", monkeypatch, 50, **kw)
    assert resumed.log[-1]["step"] == 60 and resumed.log == ref.log
