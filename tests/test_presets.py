"""Training presets: the atlas preset's batch from the device, and compiled training."""

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import scdiff
from scdiff.cli import app
from scdiff.train import TrainConfig, Trainer, compile_network
from scdiff.train._batch import CPU_BATCH, atlas_batch, fit_batch
from tests.conftest import make_counts


def test_fit_batch_takes_the_largest_power_of_two_memory_and_data_allow():
    gib = 2**30
    assert fit_batch(100_000, 80 * gib, 10_000_000) == 65536  # capped at the range's top
    assert fit_batch(1_000_000, 8 * gib, 10_000_000) == 4096  # 4295 fit: a power of two below
    assert fit_batch(10_000_000, 8 * gib, 10_000_000) == 4096  # never below the range's floor
    assert fit_batch(100_000, 80 * gib, 1_000_000) == 16384  # 1M / 32 = 31,250 -> 16,384
    assert fit_batch(100_000, 80 * gib, 200_000) == 4096  # 6,250 -> 4096
    assert fit_batch(100_000, 80 * gib, 3000) == 256  # tiny data: still a usable batch


def test_atlas_preset_on_the_cpu(tmp_path):
    net = scdiff.ConditionalDiffusion(make_counts(seed=3), condition="cell_type", width=16,
                                      depth=1).parts.build_network()
    assert atlas_batch(net, torch.device("cpu"), 10_000_000) == CPU_BATCH
    assert atlas_batch(net, torch.device("cpu"), 64_000) == 2000  # 1/32 of the cells
    a = make_counts(n_per_type=200, seed=4)  # 600 cells: 1/32 is below 256 -> 256
    model = scdiff.ConditionalDiffusion(a, condition="cell_type", width=16, depth=1)
    model.train(steps=3, preset="atlas", progress=False, device="cpu")
    assert model.train_config.batch_size == 256 and model.train_config.compile is False
    model.train(steps=3, preset="atlas", batch_size=64, progress=False, device="cpu")
    assert model.train_config.batch_size == 64  # a batch given is kept
    with pytest.raises(scdiff.InputError, match=r"preset='huge' needs to be one of default, atlas"):
        model.train(steps=3, preset="huge")
    res = CliRunner().invoke(app, ["train", str(tmp_path / "missing.h5ad"), "-c", "cell_type",
                                   "--preset", "huge", "--out", str(tmp_path / "r")])
    assert res.exit_code == 1 and "--preset" in res.output and not (tmp_path / "r").exists()


@pytest.mark.slow
def test_compiled_training_matches_eager_training():
    """torch.compile (inductor on the CPU) trains as eager does. Weights are not compared:
    Adam turns the float rounding of fused kernels on near-zero gradients into whole steps
    of either sign (0.0004 apart after one step of 0.0002), while the loss is unmoved."""
    model = scdiff.ConditionalDiffusion(make_counts(seed=5), condition="cell_type", width=32, depth=1)
    data = model._data
    losses = []
    for compiled in (False, True):
        torch.manual_seed(0)
        net = model.parts.build_network()
        cfg = TrainConfig(steps=40, batch_size=32, precision="fp32", compile=compiled, warmup_steps=5)
        log = Trainer(cfg, model.schedule, torch.device("cpu")).fit(net, data).log
        losses.append([row["loss"] for row in log])
    assert len(losses[0]) == 2
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-3)
    assert compile_network(net, torch.device("cpu")) is not net
