"""The command line end to end on tiny data, through typer's CliRunner."""

import json
import subprocess
import sys

import anndata as ad
import numpy as np
import pytest
from typer.testing import CliRunner

import scdiff
from scdiff.cli import app
from tests.conftest import make_counts

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    train, test = make_counts(seed=11), make_counts(n_per_type=10, seed=12)
    train.write_h5ad(d / "train.h5ad")
    test.write_h5ad(d / "test.h5ad")
    res = invoke("train", d / "train.h5ad", "--condition", "cell_type", "--dose", "dose",
                 "--out", d / "run", "--steps", 25, "--quiet")
    assert res.exit_code == 0, res.output
    return d


def test_train_writes_run(files):
    names = sorted(p.name for p in (files / "run").iterdir())
    # a cell type and a dose: auto keeps gene space (the latent loses on doses), no space files
    assert names == ["config.json", "ema.safetensors", "loss.png", "model.safetensors", "train_log.csv"]
    cfg = json.loads((files / "run" / "config.json").read_text())
    assert cfg["conditions"]["keys"] == ["cell_type"] and cfg["train"]["steps"] == 25
    assert cfg["space"]["kind"] == "gene" and "space.safetensors" not in cfg["files"]
    assert cfg["preprocess"]["input_scale"] == "counts" and "torch" in cfg["versions"]


def test_train_loss_weighting_is_recorded_and_checked(files, tmp_path):
    res = invoke("train", files / "train.h5ad", "-c", "cell_type", "--out", tmp_path / "r",
                 "--steps", 3, "--loss-weighting", "min_snr", "--quiet")
    assert res.exit_code == 0, res.output
    cfg = json.loads((tmp_path / "r" / "config.json").read_text())
    assert cfg["train"]["loss_weighting"] == "min_snr" and cfg["train"]["snr_gamma"] == 5.0
    assert json.loads((files / "run" / "config.json").read_text())["train"]["loss_weighting"] == "snr_cap"
    res = invoke("train", files / "train.h5ad", "-c", "cell_type", "--out", tmp_path / "bad",
                 "--steps", 3, "--loss-weighting", "p2")
    assert res.exit_code == 1
    assert "--loss-weighting p2 needs to be one of snr_cap, min_snr, none" in res.output
    assert not (tmp_path / "bad").exists()


def test_train_refuses_existing_run(files):
    before = (files / "run" / "ema.safetensors").read_bytes()
    res = invoke("train", files / "train.h5ad", "-c", "cell_type", "--out", files / "run", "--steps", 2)
    assert res.exit_code == 1 and "already exists" in res.output
    assert (files / "run" / "ema.safetensors").read_bytes() == before


def test_sample_condition_and_like(files):
    out = files / "mono.h5ad"
    res = invoke("sample", files / "run", "--condition", "cell_type=t2", "--dose", "dose=1",
                 "--n-cells", 12, "--out", out, "--guidance", 2, "--steps", 10, "--seed", 4, "--quiet")
    assert res.exit_code == 0, res.output
    fake = ad.read_h5ad(out)
    assert fake.n_obs == 12 and (fake.obs.cell_type == "t2").all()
    assert fake.uns["scdiff"]["guidance"] == 2.0 and fake.uns["scdiff"]["steps"] == 10
    like = files / "like.h5ad"
    res = invoke("sample", files / "run", "--like", files / "test.h5ad", "--out", like,
                 "--sampler", "ddpm", "--steps", 20, "--quiet")
    assert res.exit_code == 0, res.output
    assert ad.read_h5ad(like).n_obs == 30


def test_sample_zeros_option(files, tiny_run):
    out = {}
    for rule in ("gene", "cell"):  # a gene-space run's options (a latent one draws counts)
        path = files / f"zeros_{rule}.h5ad"
        res = invoke("sample", tiny_run[0], "--n-cells", 40, "--steps", 5, "--zeros", rule,
                     "--out", path, "--quiet")
        assert res.exit_code == 0, res.output
        out[rule] = ad.read_h5ad(path)
        assert out[rule].uns["scdiff"]["zeros"] == rule
    assert (out["cell"].X == 0).sum() > (out["gene"].X == 0).sum()


def test_like_reads_only_obs(files, tmp_path):
    """A reference whose X is garbage (NaN) still works: its expression is never read."""
    ref = make_counts(n_per_type=3, seed=1)
    ref.X = np.full(ref.shape, np.nan, dtype=np.float32)
    ref.write_h5ad(tmp_path / "ref.h5ad")
    res = invoke("sample", files / "run", "--like", tmp_path / "ref.h5ad", "--out", tmp_path / "o.h5ad",
                 "--steps", 5, "--quiet")
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize("args, message", [
    (["--condition", "cell_type=B"], "valid values of 'cell_type' are: t0, t1, t2"),
    (["--condition", "cell_type"], "KEY=VALUE"),
    (["--n-cells", "0"], "--n-cells 0 needs to be a whole number"),
    (["--sampler", "euler"], "--sampler euler needs to be one of ddim, ddpm, dpm++"),
    (["--zeros", "sparse"], "--zeros sparse needs to be one of auto, cell, gene, none"),
    (["--dose", "dose=-2"], "negative"),
])
def test_sample_bad_input_is_one_line(files, tmp_path, args, message):
    res = invoke("sample", files / "run", "--out", tmp_path / "x.h5ad", *args)
    assert res.exit_code == 1
    assert message in res.output and "Traceback" not in res.output
    assert not (tmp_path / "x.h5ad").exists()


def test_sample_refuses_to_overwrite(files, tmp_path):
    out = tmp_path / "keep.h5ad"
    out.write_bytes(b"precious")
    res = invoke("sample", files / "run", "--out", out, "--n-cells", 3)
    assert res.exit_code == 1 and "--overwrite" in res.output
    assert out.read_bytes() == b"precious"


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "missing.h5ad", "does not exist"),
    (lambda d: d, "holds no .h5ad file"),
    (lambda d: (d / "t.txt").write_text("x") and d / "t.txt", "extension"),
])
def test_train_bad_files(tmp_path, make, message):
    res = invoke("train", make(tmp_path), "-c", "cell_type", "--out", tmp_path / "r")
    assert res.exit_code == 1 and message in res.output


def test_train_bad_data(tmp_path):
    a = make_counts()
    a.X = a.X.toarray() - 2.0
    a.write_h5ad(tmp_path / "scaled.h5ad")
    res = invoke("train", tmp_path / "scaled.h5ad", "-c", "cell_type", "--out", tmp_path / "r")
    assert res.exit_code == 1 and "scaled" in res.output and ".raw" in res.output
    b = make_counts()
    b.write_h5ad(tmp_path / "ok.h5ad")
    res = invoke("train", tmp_path / "ok.h5ad", "-c", "celltype", "--out", tmp_path / "r2")
    assert res.exit_code == 1 and "columns there are: cell_type, dose" in res.output
    assert not (tmp_path / "r2").exists()


def test_info_table_and_json(files):
    res = invoke("info", files / "run")
    assert res.exit_code == 0 and "cell_type" in res.output
    res = invoke("info", files / "run", "--json")
    assert json.loads(res.output)["conditions"] == {"cell_type": ["t0", "t1", "t2"]}
    res = invoke("info", files / "nope")
    assert res.exit_code == 1 and "does not exist" in res.output


def test_evaluate_cli(files, tmp_path):
    gen = files / "like.h5ad"
    if not gen.exists():
        pytest.skip("needs test_sample_condition_and_like")
    res = invoke("evaluate", files / "test.h5ad", gen, "-c", "cell_type", "--json")
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    assert {r["metric"] for r in rows} >= {"mmd", "knn_auc", "mean_pearson"}


def test_version_and_module_entry():
    res = invoke("--version")
    assert res.exit_code == 0 and "scdiff 0.1.0" in res.output
    proc = subprocess.run([sys.executable, "-m", "scdiff", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "train" in proc.stdout


def test_messages_name_flags_on_the_cli_and_parameters_in_python(files, tmp_path, tiny_run):
    """One library message, two readings: the CLI's boundary spells parameters as flags."""
    res = invoke("train", files / "train.h5ad", "-c", "cell_type", "--out", files / "run", "--steps", 2)
    assert "choose another --out or pass --overwrite" in " ".join(res.output.split())
    with pytest.raises(scdiff.InputError, match="choose another out or pass overwrite=True"):
        scdiff.commands.train(files / "train.h5ad", condition="cell_type", out=files / "run", steps=2)
    res = invoke("train", files / "train.h5ad", "-c", "cell_type", "--out", tmp_path / "r",
                 "--resume", "--overwrite")
    assert "--resume continues a run and --overwrite replaces it" in " ".join(res.output.split())
    res = invoke("sample", tiny_run[0], "--out", tmp_path / "x.h5ad", "--zeros", "cell", "--counts",
                 "--n-cells", 2, "--from", files / "test.h5ad", "--steps", 2)
    assert "give either --from (cells to translate) or --like/--n-cells" in " ".join(res.output.split())


def test_flag_spelling():
    from scdiff.cli._boundary import flag

    assert flag("overwrite", "True") == "--overwrite" and flag("backed", "False") == "--no-backed"
    assert flag("from_", None) == "--from" and flag("n_genes", "500") == "--genes 500"
    assert flag("guidance", "{'cell_type': 1, 'drug': 1.5}") == "--guidance cell_type=1 --guidance drug=1.5"
