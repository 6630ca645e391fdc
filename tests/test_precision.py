"""--precision: auto picks bf16 where it is fast; every choice trains reproducibly on the CPU."""

import pytest
import torch

import scdiff
from scdiff import InputError
from scdiff.train import _trainer, resolve_precision
from tests.conftest import make_counts

CPU = torch.device("cpu")


def test_choices_and_errors():
    assert resolve_precision("fp32", CPU) is None
    assert resolve_precision("bf16", CPU) is torch.bfloat16
    with pytest.raises(InputError, match="needs a CUDA GPU"):
        resolve_precision("fp16", CPU)
    with pytest.raises(InputError, match="one of auto, fp32, bf16, fp16"):
        resolve_precision("half", CPU)


@pytest.mark.parametrize("fast", [True, False])
def test_auto_on_the_cpu_follows_the_hardware_and_the_network_size(monkeypatch, fast):
    monkeypatch.setattr(_trainer, "cpu_has_fast_bf16", lambda: fast)
    big = _trainer.AUTO_BF16_MIN_PARAMS
    assert resolve_precision("auto", CPU, n_params=big) is (torch.bfloat16 if fast else None)
    assert resolve_precision("auto", CPU, n_params=big - 1) is None  # casts would cost more
    assert resolve_precision("auto", CPU) is None


def test_bf16_training_is_reproducible_and_learns():
    a = make_counts(seed=8)

    def fit():
        m = scdiff.ConditionalDiffusion(a, condition="cell_type", width=32, depth=1)
        return m.train(steps=40, batch_size=16, precision="bf16", progress=False, device="cpu")

    one, two = fit(), fit()
    for key, value in one.ema_state.items():
        assert torch.equal(value, two.ema_state[key]), key
        assert value.dtype == torch.float32  # autocast computes in bf16, weights stay fp32
    assert one.log[-1]["loss"] < one.log[0]["loss"]
