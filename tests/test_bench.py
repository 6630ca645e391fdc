"""The benchmarks measure what they say (no timing is asserted: machines are noisy)."""

import inspect
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import scdiff
from bench import _throughput as tp

ROOT = Path(__file__).resolve().parents[1]


def test_bench_uses_the_default_network():
    sig = inspect.signature(scdiff.ConditionalDiffusion.__init__).parameters
    for key, value in tp.DEFAULT_NET.items():
        assert sig[key].default == value, key


def test_one_row_end_to_end():
    row = tp.measure(device=torch.device("cpu"), precision="fp32", n_cells=512, n_genes=50,
                     n_types=3, density=0.1, batch=64, steps=21, sample_cells=32, sample_steps=4,
                     net_kw={**tp.DEFAULT_NET, "width": 32, "depth": 1}, repeats=1)
    assert row.trainer_cells_s > 0 and row.bare_cells_s > 0 and row.sample_cells_s > 0
    assert row.peak_tflops > 0 and row.peak_mem_gib > 0 and row.cfg_cost > 0
    # a training step costs ~6 FLOPs per parameter and cell (2 forward, 4 backward; the
    # input layer needs no input gradient)
    net = tp.ConditionalMLP(50, n_categories=[3], width=32, depth=1)
    n_params = sum(p.numel() for p in net.parameters())
    assert 4 * n_params < row.train_gflop_per_cell * 1e9 < 7 * n_params
    text = tp.table([row], title="tiny", sample_steps=4)
    assert text.count("\n|") == 3 and "| fp32 |" in text
    assert "(DDIM 4, CFG)" in text  # the header names the steps that were timed


def test_synthetic_data_is_standardised_and_sparse_like():
    data = tp.synthetic(2000, 30, n_types=4, density=0.1)
    assert data.x.shape == (2000, 30) and data.cats.max() == 3
    assert abs(float(data.x.mean())) < 1e-4 and abs(float(data.x.std()) - 1) < 1e-2
    # 90% of entries share the zero value of their gene
    assert float((data.x == data.x.min(0).values).float().mean()) > 0.85


@pytest.mark.parametrize("blocked", [("anndata", "safetensors", "sklearn")])
def test_imports_without_the_anndata_stack(tmp_path, blocked):
    """A bare GPU image has torch but not anndata: the benchmark still loads."""
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {blocked!r}:
                    raise ImportError(name)
        sys.meta_path.insert(0, Block())
        sys.path.insert(0, {str(ROOT)!r})
        from bench import _throughput as tp
        net = tp.ConditionalMLP(20, n_categories=[2], **tp.DEFAULT_NET)
        assert "anndata" not in sys.modules
        print("ok", sum(p.numel() for p in net.parameters()))
    """))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("ok"), done.stderr[-2000:]


def test_additive_network_costs_its_map_and_ratios_are_reported():
    kw = dict(device=torch.device("cpu"), precision="fp32", n_cells=256, n_genes=40, n_types=3,
              density=0.1, batch=32, steps=21, sample_cells=16, sample_steps=2, repeats=1)
    small = {**tp.DEFAULT_NET, "width": 16, "depth": 1}
    plain = tp.measure(net_kw=small, **kw)
    additive = tp.measure(net_kw={**small, "additive": True}, **kw)
    # the path adds a 16 x 40 map (and a 16 -> 1 gate): about 6 FLOPs per weight per cell
    extra = (additive.train_gflop_per_cell - plain.train_gflop_per_cell) * 1e9
    assert 4 * 16 * 40 < extra < 8 * (16 * 40 + 17)
    text = tp.net_ratios([("default network", [plain]), ("additive", [additive])])
    ratio = additive.trainer_cells_s / plain.trainer_cells_s
    assert f"| additive | fp32 | {ratio:.2f} |" in text and "against the default network" in text


def test_screen_benchmark_end_to_end(tmp_path, monkeypatch):
    """bench.screen on one world, a few training steps: every held-out group, every
    baseline and the truth's ceiling scored, the table saved and summarised."""
    from bench import screen

    monkeypatch.setattr(screen, "RESULTS", tmp_path)
    screen.main(["--worlds", "0", "--seeds", "0", "--train", '{"steps": 10, "batch_size": 256}',
                 "--n-generated", "4", "--n-test", "4", "--tag", "_t"])
    table = pd.read_csv(tmp_path / "screen_t.csv")
    assert set(table["holdout"]) == set(screen.GROUPS)
    assert {"scdiff", "mean_model", "truth", "linear", "additive", "mean_perturbation", "no_change",
            "nearest_dose"} <= set(table["method"])
    summary = screen.summarise(table)
    assert np.isfinite(summary.loc[("unseen_drug", "scdiff"), "r2_delta_top"])
    assert np.isfinite(summary.loc[("unseen_drug", "mean_model"), "r2_delta_top"])
    # the pairs' ceiling without their interaction, scored on the pairs alone
    assert set(table.loc[table["method"] == "additive_truth", "holdout"]) == {"pair"}
    assert np.isfinite(summary.loc[("pair", "additive_truth"), "r2_delta_top"])
    assert screen.per_world(table).shape[1] == 1


def test_screen_benchmark_mean_only(tmp_path, monkeypatch):
    """bench.screen --mean-only: the mean model fitted alone (a few steps) and scored."""
    from bench import screen

    monkeypatch.setattr(screen, "RESULTS", tmp_path)
    monkeypatch.setattr(screen, "MEAN_STEPS", 20)
    screen.main(["--worlds", "0", "--seeds", "0", "--mean-only", "--n-test", "4", "--tag", "_m"])
    table = pd.read_csv(tmp_path / "screen_m.csv")
    assert set(table["method"]) == {"mean_model"} and set(table["holdout"]) == set(screen.GROUPS)
    assert table["r2_delta_top"].notna().all() and table["energy"].isna().all()
