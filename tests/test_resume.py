"""Interrupts save a checkpoint; resuming gives the same weights, bit for bit, on the CPU."""

import contextlib
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import scdiff
from scdiff import RunError, TrainingInterrupted
from tests.conftest import make_counts


def _model(a):
    return scdiff.ConditionalDiffusion(a, condition="cell_type", dose="dose", width=32, depth=2,
                                       dropout=0.1)


@contextlib.contextmanager
def _stop_after(calls: int):
    """Stands in for Ctrl-C: the stop flag turns true after ``calls`` training steps."""
    from scdiff._interrupt import StopFlag

    class Counting(StopFlag):
        n = 0

        def __call__(self) -> bool:
            self.n += 1
            if self.n >= calls:
                self.requested, self.signal_name = True, "SIGINT"
            return self.requested

    yield Counting()


def test_interrupt_then_resume_is_bit_for_bit(tmp_path, monkeypatch):
    a = make_counts(seed=21)
    kw = dict(steps=90, batch_size=32, progress=False, seed=3, checkpoint_every=40)
    ref = _model(a).train(**kw)

    run = tmp_path / "run"
    run.mkdir()
    import scdiff.model._fit as m

    monkeypatch.setattr(m, "graceful_stop", lambda: _stop_after(55))
    with pytest.raises(TrainingInterrupted, match="step 55 of 90.*resume=True"):
        _model(a).train(checkpoint_dir=run, **kw)
    assert (run / "checkpoint.safetensors").exists()
    monkeypatch.undo()
    resumed = _model(a).train(checkpoint_dir=run, resume=True, **kw)
    for key, value in ref.ema_state.items():
        assert torch.equal(value, resumed.ema_state[key]), key
    for key, value in ref.network.state_dict().items():
        assert torch.equal(value, resumed.network.state_dict()[key]), key
    assert [r["step"] for r in resumed.log] == [r["step"] for r in ref.log]


def test_resume_refuses_other_data(tmp_path, monkeypatch):
    run = tmp_path / "run"
    run.mkdir()
    import scdiff.model._fit as m

    monkeypatch.setattr(m, "graceful_stop", lambda: _stop_after(5))
    with pytest.raises(TrainingInterrupted):
        _model(make_counts(seed=1)).train(steps=30, batch_size=16, progress=False, checkpoint_dir=run)
    monkeypatch.undo()
    other = make_counts(seed=1, n_genes=25)
    with pytest.raises(RunError, match="other data or options"):
        _model(other).train(checkpoint_dir=run, resume=True, progress=False)


def test_sigterm_in_the_cli_saves_and_resumes(tmp_path):
    a = make_counts(seed=4)
    data = tmp_path / "d.h5ad"
    a.write_h5ad(data)
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "scdiff", "train", str(data), "-c", "cell_type", "--out", str(run),
           "--steps", "1200", "--batch-size", "32", "--quiet"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 60
    while not run.exists() and time.time() < deadline:  # the run folder appears when training starts
        time.sleep(0.1)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "SIGTERM" in err and "--resume" in err and "Traceback" not in err
    assert (run / "checkpoint.safetensors").exists() and not (run / "config.json").exists()
    again = subprocess.run(cmd[:-1] + ["--quiet"], capture_output=True, text=True, env=env)
    assert again.returncode == 1 and "interrupted run" in again.stderr
    done = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    model = scdiff.ConditionalDiffusion.load(run)
    assert model.train_config.steps == 1200 and model.log[-1]["step"] == 1200
    assert not (run / "checkpoint.safetensors").exists()


def test_run_with_a_pickle_is_refused(tiny_run, tmp_path):
    path, _ = tiny_run
    copy = tmp_path / "copy"
    copy.mkdir()
    for p in path.iterdir():
        (copy / p.name).write_bytes(p.read_bytes())
    torch.save({"x": torch.zeros(1)}, copy / "extra.pt")
    with pytest.raises(RunError, match="pickle"):
        scdiff.ConditionalDiffusion.load(copy)


def test_ranks_resuming_from_one_checkpoint_get_their_own_streams():
    # every rank restores rank 0's generator states; ranks > 0 must then draw afresh,
    # else they share rank 0's timesteps, noise and dropout masks from the resume on
    from scdiff.train._trainer import reseed_rank

    state = torch.Generator().manual_seed(11).get_state()

    def draws(rank, step):
        gen = torch.Generator()
        gen.set_state(state)
        torch.manual_seed(0)
        if rank > 0:
            reseed_rank(gen, gen, seed=3, rank=rank, step=step)
        return torch.randn(8, generator=gen), torch.rand(8)  # trainer's stream, dropout's

    r0, r1, r2 = draws(0, 55), draws(1, 55), draws(2, 55)
    assert torch.equal(r0[0], torch.randn(8, generator=torch.Generator().manual_seed(11)))
    for a, b in [(r0, r1), (r1, r2), (r1, draws(1, 80))]:
        assert not torch.equal(a[0], b[0]) and not torch.equal(a[1], b[1])
    again = draws(1, 55)  # a rank's resumed stream depends on (seed, rank, step) alone
    assert torch.equal(r1[0], again[0]) and torch.equal(r1[1], again[1])
