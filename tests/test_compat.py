"""Runs written by earlier versions load and sample as they did (to float32 rounding).

``fixtures/run_v0_1`` was written by scdiff 0.1 at commit 315e13d (before the
restructure into ``scdiff.model``): two conditions and a paired dose (so the additive
path and the dose pairing are exercised), trained on counts with ``monitor`` on. Its
samples at that commit are kept in ``run_v0_1_expected.npz``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import scdiff

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def old_model():
    return scdiff.ConditionalDiffusion.load(FIXTURES / "run_v0_1")


def test_old_run_samples_identically(old_model):
    expected = np.load(FIXTURES / "run_v0_1_expected.npz")
    ddim = {"sampler": "ddim"}  # 0.1's default sampler (now UniPC, 10 steps)
    # the same draws and the same arithmetic; float32 matrix kernels differ by a few ulps
    # between CPUs (the fixture's machine and this one), so values agree to 1e-5, not bit for bit
    same = {"rtol": 1e-5, "atol": 1e-5}
    np.testing.assert_allclose(old_model.sample(24, seed=0, **ddim).X, expected["sample"], **same)
    np.testing.assert_array_equal(np.asarray(old_model.sample(24, seed=1, counts=True, **ddim).X),
                                  expected["counts"])
    request = dict(guidance={"cell_type": 1.0, "drug": 1.5}, condition={"cell_type": "t1", "drug": "X"},
                   dose={"dose": 5.0})
    # guidance above 1 is now clipped to the data's range by default; without the guard, as then
    np.testing.assert_allclose(old_model.sample(24, seed=2, clip=False, **ddim, **request).X,
                               expected["guided"], **same)
    # a run without recorded maxima is clipped at the most any cell can hold, log1p(1e4)
    guarded = old_model.sample(24, seed=2, **request).X
    assert guarded.max() <= np.log1p(1e4) + 1e-4 and guarded.max() < expected["guided"].max()


def test_old_run_keeps_its_log_and_description(old_model):
    log = pd.DataFrame(old_model.log)
    assert list(log.columns) == ["step", "loss", "grad_norm", "lr", "mmd", "mmd_floor"]
    info = old_model.info()
    assert info["conditions"] == {"cell_type": ["t0", "t1", "t2"], "drug": ["X", "control"]}
    assert info["network"]["additive"] is True
