"""Training under torchrun: two gloo processes on the CPU match one process in expectation."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import scdiff
from tests.conftest import make_counts

STEPS, BATCH = 200, 64

# Each rank trains through the library (process group, shards and DDP come from torchrun's
# environment), saves its own EMA weights, and rank 0 alone saves the run.
WORKER = textwrap.dedent(f"""
    import sys, torch
    torch.set_num_threads(1)
    import anndata as ad, scdiff
    from safetensors.torch import save_file
    from scdiff.train import is_main_process, rank, world_size
    out = sys.argv[1]
    a = ad.read_h5ad(out + "/data.h5ad")
    model = scdiff.ConditionalDiffusion(a, condition="cell_type", dose="dose", width=32, depth=2,
                                        space="gene")
    model.train(steps={STEPS}, batch_size={BATCH}, progress=False, device="cpu", precision="fp32")
    save_file(model.ema_state, f"{{out}}/rank{{rank()}}.safetensors")
    assert world_size() == 2
    if is_main_process():
        model.save(out + "/run")
""")


def _launch(*args, cwd):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=240)


def _tail_loss(log):
    """Mean training loss over the second half: what two runs share in expectation."""
    return float(np.mean([r["loss"] for r in log if r["step"] > STEPS // 2]))


@pytest.fixture(scope="module")
def torchrun_result(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    a = make_counts(n_per_type=80, seed=5)
    a.write_h5ad(tmp / "data.h5ad")
    (tmp / "worker.py").write_text(WORKER)
    done = _launch(str(tmp / "worker.py"), str(tmp), cwd=tmp)
    assert done.returncode == 0, done.stderr[-3000:]
    return tmp, a


def test_ranks_end_with_identical_weights(torchrun_result):
    tmp, _ = torchrun_result
    r0, r1 = load_file(str(tmp / "rank0.safetensors")), load_file(str(tmp / "rank1.safetensors"))
    assert r0.keys() == r1.keys()
    for key in r0:  # DDP all-reduces gradients, so every rank applies the same update
        assert torch.equal(r0[key], r1[key]), key


def test_two_processes_match_one_in_expectation(torchrun_result):
    tmp, a = torchrun_result
    ddp = scdiff.ConditionalDiffusion.load(tmp / "run")  # only rank 0 wrote it
    assert [r["step"] for r in ddp.log][-1] == STEPS
    single = scdiff.ConditionalDiffusion(a, condition="cell_type", dose="dose", width=32, depth=2,
                                         space="gene")
    single.train(steps=STEPS, batch_size=BATCH, progress=False, device="cpu", precision="fp32")
    # same global batch (32 per rank), other noise draws: the loss curves agree in level
    one, two = _tail_loss(single.log), _tail_loss(ddp.log)
    assert abs(one - two) / one < 0.15, (one, two)
    first = single.log[0]["loss"]
    assert two < 0.8 * first  # and the two-process run did learn
    # and the weights differ (different draws), so the match above is not a copy
    assert not torch.equal(single.ema_state["output.weight"], ddp.ema_state["output.weight"])


@pytest.mark.slow
def test_torchrun_cli_writes_one_run(tmp_path):
    a = make_counts(seed=6)
    a.write_h5ad(tmp_path / "d.h5ad")
    done = _launch("-m", "scdiff", "train", str(tmp_path / "d.h5ad"), "-c", "cell_type",
                   "--steps", "40", "--batch-size", "32", "--device", "cpu", "--out",
                   str(tmp_path / "run"), "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    model = scdiff.ConditionalDiffusion.load(tmp_path / "run")
    assert model.log[-1]["step"] == 40 and model.space_log[-1]["step"] == 40
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "config.json", "ema.safetensors", "loss.png", "model.safetensors", "space.safetensors",
        "space_log.csv", "train_log.csv"]


# Both phases of a latent-space run under torchrun, in one process group: the ranks end with
# the same autoencoder and the same network.
LATENT_WORKER = textwrap.dedent("""
    import sys, torch
    torch.set_num_threads(1)
    import anndata as ad, scdiff
    from safetensors.torch import save_file
    from scdiff.train import rank
    out = sys.argv[1]
    a = ad.read_h5ad(out + "/data.h5ad")
    model = scdiff.ConditionalDiffusion(a, condition="cell_type", space="latent", latent_dim=4,
                                        width=16, depth=1, autoencoder={"width": 16})
    model.train(steps=30, batch_size=32, progress=False, device="cpu", precision="fp32")
    save_file({**model.ema_state, **{"space." + k: v for k, v in model.space.tensors().items()}},
              f"{out}/latent{rank()}.safetensors")
""")


def test_a_latent_space_trains_under_torchrun(tmp_path):
    make_counts(n_per_type=30, seed=7).write_h5ad(tmp_path / "data.h5ad")
    (tmp_path / "worker.py").write_text(LATENT_WORKER)
    done = _launch(str(tmp_path / "worker.py"), str(tmp_path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    r0, r1 = (load_file(str(tmp_path / f"latent{i}.safetensors")) for i in (0, 1))
    assert any(k.startswith("space.autoencoder.") for k in r0) and r0.keys() == r1.keys()
    for key in r0:
        assert torch.equal(r0[key], r1[key]), key
