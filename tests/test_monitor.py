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
