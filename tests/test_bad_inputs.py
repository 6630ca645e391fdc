"""The catalogue of bad inputs: each through the CLI and the API, one clear line, nothing lost.

Every case here has a row in docs/errors.md (checked below).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from typer.testing import CliRunner

import scdiff
from scdiff import ScdiffError
from scdiff.cli import app
from scdiff.data import log_normalize, read_input
from tests.conftest import make_counts

DOCS = Path(__file__).resolve().parents[1] / "docs" / "errors.md"


@dataclass
class Case:
    name: str
    message: str  # what the Python user reads (parameters by their Python names)
    cli: Callable[[Path, Path], list]  # (tmp, run) -> CLI args
    api: Callable[[Path, Path], object]  # (tmp, run) -> performs the call
    cli_message: str | None = None  # what the CLI user reads, where it names a flag instead
    patch: Callable | None = None  # (monkeypatch) -> None: the fault the case simulates

    @property
    def shown(self) -> str:
        return self.cli_message or self.message


def _write(tmp: Path, name: str, adata: ad.AnnData) -> Path:
    path = tmp / name
    adata.write_h5ad(path)
    return path


def _train_args(path, *extra):
    return ["train", path, "-c", "cell_type", "--out", path.parent / "newrun", "--steps", 2, *extra]


def _api_train(path, **kw):
    kw.setdefault("condition", "cell_type")
    return scdiff.ConditionalDiffusion(read_input(path), **kw)


def _data(tmp, name, mutate, **make):
    a = make_counts(**make)
    mutate(a)
    return _write(tmp, name, a)


def _set_x(value):
    def mutate(a):
        a.X = value(a)
    return mutate


def _obs(col, value):
    def mutate(a):
        a.obs[col] = value(a)
    return mutate


def _nan_x(a):
    X = a.X.toarray()
    X[0, 0] = np.nan
    return X


def _inf_x(a):
    X = a.X.toarray()
    X[1, 2] = np.inf
    return X


def _dup_var(a):
    a.var_names = ["g0"] * 2 + list(a.var_names[2:])


def _dup_obs(a):
    a.obs_names = ["c0"] * 2 + list(a.obs_names[2:])


def _one_cell(a):
    a.obs["cell_type"] = a.obs.cell_type.astype(str).where(a.obs_names != "c0", "lonely")


def _missing_value(a):
    a.obs["cell_type"] = a.obs.cell_type.astype(object).where(a.obs_names != "c5", None)


def _altered_run(tmp, run):
    copy = tmp / "altered"
    copy.mkdir(exist_ok=True)
    for p in run.iterdir():
        (copy / p.name).write_bytes(p.read_bytes())
    data = bytearray((copy / "model.safetensors").read_bytes())
    data[-3] ^= 0xFF
    (copy / "model.safetensors").write_bytes(bytes(data))
    return copy


def _missing_file_run(tmp, run):
    copy = tmp / "partial"
    copy.mkdir(exist_ok=True)
    for p in run.iterdir():
        if p.name != "ema.safetensors":
            (copy / p.name).write_bytes(p.read_bytes())
    return copy


def _old_run(tmp, run):
    copy = tmp / "old"
    copy.mkdir(exist_ok=True)
    for p in run.iterdir():
        (copy / p.name).write_bytes(p.read_bytes())
    cfg = json.loads((copy / "config.json").read_text())
    cfg["format_version"] = 99
    (copy / "config.json").write_text(json.dumps(cfg))
    return copy


def _truncated(tmp):
    good = _write(tmp, "good.h5ad", make_counts())
    bad = tmp / "truncated.h5ad"
    bad.write_bytes(good.read_bytes()[:2000])
    return bad


def _gene_mismatch(tmp):
    a, b = make_counts(seed=1), make_counts(seed=2)
    b.var_names = [f"other{i}" for i in range(b.n_vars)]
    return _write(tmp, "r.h5ad", a), _write(tmp, "g.h5ad", b)


def _sample(run, tmp, *extra):
    return ["sample", run, "--out", tmp / "gen.h5ad", *extra]


def _existing(tmp):
    out = tmp / "exists.h5ad"
    out.write_bytes(b"keep me")
    return out


CASES = [
    Case("missing file", "does not exist",
         lambda t, r: _train_args(t / "nope.h5ad"), lambda t, r: _api_train(t / "nope.h5ad")),
    Case("a directory", "is a directory", cli_message="holds no .h5ad file",  # train reads folders
         cli=lambda t, r: _train_args(t), api=lambda t, r: read_input(t)),
    Case("wrong format", "extension",
         lambda t, r: _train_args(_txt(t)), lambda t, r: read_input(_txt(t))),
    Case("truncated or corrupt .h5ad", "could not be read as .h5ad",
         lambda t, r: _train_args(_truncated(t)), lambda t, r: read_input(_truncated(t))),
    Case("empty AnnData", "has no cells",
         lambda t, r: _train_args(_write(t, "e.h5ad", make_counts()[:0].copy())),
         lambda t, r: _api_train(_write(t, "e.h5ad", make_counts()[:0].copy()))),
    Case("no genes", "has no genes",
         lambda t, r: _train_args(_write(t, "ng.h5ad", make_counts()[:, :0].copy())),
         lambda t, r: _api_train(_write(t, "ng.h5ad", make_counts()[:, :0].copy()))),
    Case("missing condition column", "the columns there are: cell_type, dose",
         lambda t, r: ["train", _write(t, "d.h5ad", make_counts()), "-c", "celltype", "--out", t / "x"],
         lambda t, r: _api_train(_write(t, "d.h5ad", make_counts()), condition="celltype")),
    Case("missing dose column", "dose column 'conc' not found",
         lambda t, r: _train_args(_write(t, "d.h5ad", make_counts()), "--dose", "conc"),
         lambda t, r: _api_train(_write(t, "d.h5ad", make_counts()), dose="conc")),
    Case("condition with missing values", "missing values",
         lambda t, r: _train_args(_data(t, "m.h5ad", _missing_value)),
         lambda t, r: _api_train(_data(t, "m.h5ad", _missing_value))),
    Case("a single category", "single category",
         lambda t, r: _train_args(_data(t, "s.h5ad", lambda a: None, n_types=1)),
         lambda t, r: _api_train(_data(t, "s.h5ad", lambda a: None, n_types=1))),
    Case("a category with one cell", "single cell",
         lambda t, r: _train_args(_data(t, "o.h5ad", _one_cell)),
         lambda t, r: _api_train(_data(t, "o.h5ad", _one_cell))),
    Case("NaN in X", "NaN or infinite",
         lambda t, r: _train_args(_data(t, "n.h5ad", _set_x(_nan_x))),
         lambda t, r: _api_train(_data(t, "n.h5ad", _set_x(_nan_x)))),
    Case("Inf in X", "NaN or infinite",
         lambda t, r: _train_args(_data(t, "i.h5ad", _set_x(_inf_x))),
         lambda t, r: _api_train(_data(t, "i.h5ad", _set_x(_inf_x)))),
    Case("negative (scaled) values", "looks scaled",
         lambda t, r: _train_args(_data(t, "z.h5ad", _set_x(lambda a: a.X.toarray() - 1))),
         lambda t, r: _api_train(_data(t, "z.h5ad", _set_x(lambda a: a.X.toarray() - 1)))),
    Case("normalised but not logged", "not log-transformed",
         lambda t, r: _train_args(_data(t, "c.h5ad", _set_x(lambda a: a.X.toarray() * 100.5))),
         lambda t, r: _api_train(_data(t, "c.h5ad", _set_x(lambda a: a.X.toarray() * 100.5)))),
    Case("counts asked for on non-count data", "without library sizes",
         lambda t, r: ["sample", _log_run(t), "--out", t / "g.h5ad", "--counts", "--n-cells", 3],
         lambda t, r: scdiff.ConditionalDiffusion.load(_log_run(t)).sample(3, counts=True)),
    Case("duplicate var_names", "duplicate gene names",
         lambda t, r: _train_args(_data(t, "v.h5ad", _dup_var)),
         lambda t, r: _api_train(_data(t, "v.h5ad", _dup_var))),
    Case("duplicate obs_names", "duplicate cell names",
         lambda t, r: _train_args(_data(t, "w.h5ad", _dup_obs)),
         lambda t, r: _api_train(_data(t, "w.h5ad", _dup_obs))),
    Case("non-numeric dose", "non-numeric",
         lambda t, r: _train_args(_data(t, "nd.h5ad", _obs("dose", lambda a: "high")), "--dose", "dose"),
         lambda t, r: _api_train(_data(t, "nd.h5ad", _obs("dose", lambda a: "high")), dose="dose")),
    Case("negative dose at sampling", "negative",
         lambda t, r: _sample(r, t, "--dose", "dose=-3"),
         lambda t, r: scdiff.ConditionalDiffusion.load(r).sample(3, dose={"dose": -3.0})),
    Case("unknown condition value", "valid values of 'cell_type' are: t0, t1, t2",
         lambda t, r: _sample(r, t, "-c", "cell_type=B"),
         lambda t, r: scdiff.ConditionalDiffusion.load(r).sample(3, condition={"cell_type": "B"})),
    Case("unknown condition key", "not one the model was trained on",
         lambda t, r: _sample(r, t, "-c", "batch=1"),
         lambda t, r: scdiff.ConditionalDiffusion.load(r).sample(3, condition={"batch": "1"})),
    Case("gene set mismatch at evaluation", "var_names",
         lambda t, r: ["evaluate", *_gene_mismatch(t), "-c", "cell_type"],
         lambda t, r: scdiff.evaluate(*(ad.read_h5ad(p) for p in _gene_mismatch(t)), condition="cell_type")),
    Case("n-cells zero", "n_cells=0 needs", cli_message="--n-cells 0 needs", cli=
         lambda t, r: _sample(r, t, "--n-cells", 0),
         api=lambda t, r: scdiff.ConditionalDiffusion.load(r).sample(0)),
    Case("n-cells negative", "n_cells=-5 needs", cli_message="--n-cells -5 needs", cli=
         lambda t, r: _sample(r, t, "--n-cells", -5),
         api=lambda t, r: scdiff.ConditionalDiffusion.load(r).sample(-5)),
    Case("n-cells absurdly large", "n_cells=1000000000000 needs",
         cli_message="--n-cells 1000000000000 needs", cli=
         lambda t, r: _sample(r, t, "--n-cells", 10**12),
         api=lambda t, r: scdiff.ConditionalDiffusion.load(r).sample(10**12)),
    Case("output path exists", "pass overwrite=True", cli_message="pass --overwrite", cli=
         lambda t, r: ["sample", r, "--out", _existing(t), "--n-cells", 3],
         api=lambda t, r: scdiff.data.write_h5ad(make_counts(), _existing(t))),
    Case("unwritable output location", "not a folder",
         lambda t, r: ["sample", r, "--out", _existing(t) / "gen.h5ad", "--n-cells", 3],
         lambda t, r: scdiff.data.write_h5ad(make_counts(), _existing(t) / "gen.h5ad")),
    Case("output folder missing", "does not exist; create it first",
         lambda t, r: ["sample", r, "--out", t / "no" / "gen.h5ad", "--n-cells", 3],
         lambda t, r: scdiff.data.write_h5ad(make_counts(), t / "no" / "gen.h5ad")),
    Case("run directory missing", "does not exist",
         lambda t, r: _sample(t / "norun", t), lambda t, r: scdiff.ConditionalDiffusion.load(t / "norun")),
    Case("run with a missing file", "is missing",
         lambda t, r: _sample(_missing_file_run(t, r), t),
         lambda t, r: scdiff.ConditionalDiffusion.load(_missing_file_run(t, r))),
    Case("run with altered weights", "altered",
         lambda t, r: _sample(_altered_run(t, r), t),
         lambda t, r: scdiff.ConditionalDiffusion.load(_altered_run(t, r))),
    Case("run from an incompatible version", "run format 99",
         lambda t, r: _sample(_old_run(t, r), t),
         lambda t, r: scdiff.ConditionalDiffusion.load(_old_run(t, r))),
    Case("existing run directory", "already exists",
         lambda t, r: ["train", _write(t, "d.h5ad", make_counts()), "-c", "cell_type", "--out", r],
         lambda t, r: scdiff.ConditionalDiffusion.load(r).save(r)),
    Case("negative seed", "seed=-1 needs to be a whole number >= 0", cli_message="--seed -1 needs",
         cli=lambda t, r: _sample(r, t, "--seed", -1),
         api=lambda t, r: scdiff.ConditionalDiffusion.load(r).sample(3, seed=-1)),
    Case("negative seed at evaluation", "seed=-1 needs to be a whole number >= 0",
         cli_message="--seed -1 needs",
         cli=lambda t, r: ["evaluate", *_two_log_files(t), "-c", "cell_type", "--seed", -1],
         api=lambda t, r: scdiff.commands.evaluate(*_two_log_files(t), condition="cell_type", seed=-1)),
    Case("learning rate not a number", "lr=nan needs to be a positive number", cli_message="--lr nan needs",
         cli=lambda t, r: _train_args(_write(t, "d.h5ad", make_counts()), "--lr", "nan"),
         api=lambda t, r: _api_train(_write(t, "d.h5ad", make_counts())).train(lr=float("nan"))),
    Case("malformed --like table", "could not be read as a table",
         cli=lambda t, r: _sample(r, t, "--like", _ragged_csv(t)),
         api=lambda t, r: scdiff.commands.sample(r, t / "gen.h5ad", like=_ragged_csv(t))),
    Case("config.json that is a list", "holds a list, not the settings of a run",
         cli=lambda t, r: _sample(_edited_run(t, r, lambda c: [c]), t),
         api=lambda t, r: scdiff.ConditionalDiffusion.load(_edited_run(t, r, lambda c: [c]))),
    Case("edited gene list in config.json", "does not fit its weights (29 genes listed; mean has 30",
         cli=lambda t, r: _sample(_edited_run(t, r, _drop_a_gene), t),
         api=lambda t, r: scdiff.ConditionalDiffusion.load(_edited_run(t, r, _drop_a_gene))),
    Case("edited network width in config.json", "the weights' shapes are not the network's",
         cli=lambda t, r: _sample(_edited_run(t, r, _huge_width), t),
         api=lambda t, r: scdiff.ConditionalDiffusion.load(_edited_run(t, r, _huge_width))),
    Case("a run trained with the removed transformer",
         "'transformer' network, which this scdiff no longer has",
         cli=lambda t, r: _sample(_edited_run(t, r, _transformer_run), t),
         api=lambda t, r: scdiff.ConditionalDiffusion.load(_edited_run(t, r, _transformer_run))),
    Case("disk full while writing", "could not write", cli_message="(No space left on device)",
         cli=lambda t, r: _sample(r, t, "--n-cells", 3, "--steps", 2),
         api=lambda t, r: scdiff.ConditionalDiffusion.load(r).sample_to_file(t / "gen.h5ad", 3, steps=2),
         patch=lambda mp: mp.setattr(ad.AnnData, "write_h5ad", _disk_full)),
    Case("zero training steps", "steps=0 needs to be a whole number >= 1", cli_message="--steps 0 needs",
         cli=lambda t, r: ["train", _write(t, "d.h5ad", make_counts()), "-c", "cell_type",
                           "--out", t / "newrun", "--steps", 0],
         api=lambda t, r: _api_train(_write(t, "d.h5ad", make_counts())).train(steps=0)),
    Case("zero batch size", "batch_size=0 needs to be a whole number >= 1",
         cli_message="--batch-size 0 needs",
         cli=lambda t, r: _train_args(_write(t, "d.h5ad", make_counts()), "--batch-size", 0),
         api=lambda t, r: _api_train(_write(t, "d.h5ad", make_counts())).train(batch_size=0)),
    Case("unknown precision", "precision='fp8' needs to be one of auto, fp32, bf16, fp16",
         cli_message="--precision fp8 needs",
         cli=lambda t, r: _train_args(_write(t, "d.h5ad", make_counts()), "--precision", "fp8"),
         api=lambda t, r: _api_train(_write(t, "d.h5ad", make_counts())).train(precision="fp8")),
    Case("monitor fraction too large", "monitor=1.5 needs to be a fraction between 0 and 0.5",
         cli_message="--monitor 1.5 needs",
         cli=lambda t, r: _train_args(_write(t, "d.h5ad", make_counts()), "--monitor", 1.5),
         api=lambda t, r: _api_train(_write(t, "d.h5ad", make_counts())).train(monitor=1.5)),
    Case("small negative values (smoothing)", "pass clip_negative=True", cli_message="pass --clip-negative",
         cli=lambda t, r: _train_args(_data(t, "s.h5ad", _tiny_negatives)),
         api=lambda t, r: _api_train(_data(t, "s.h5ad", _tiny_negatives))),
    Case("log2 data", "looks like log2(1 + x)",
         cli=lambda t, r: _train_args(_data(t, "l2.h5ad", _log2)),
         api=lambda t, r: _api_train(_data(t, "l2.h5ad", _log2))),
    Case("all-zero matrix", "holds only zeros",
         cli=lambda t, r: _train_args(_data(t, "z0.h5ad", _set_x(lambda a: sp.csr_matrix(a.shape)))),
         api=lambda t, r: _api_train(_data(t, "z0.h5ad", _set_x(lambda a: sp.csr_matrix(a.shape))))),
    Case("a table read as expression", "model it as a plain table with kind='tabular'",
         cli_message="model it as a plain table with --kind tabular",
         cli=lambda t, r: ["train", _big_table(t), "-c", "label", "--kind", "expression",
                           "--out", t / "newrun"],
         api=lambda t, r: scdiff.ConditionalDiffusion(read_input(_big_table(t), conditions=["label"]),
                                                      condition="label", kind="expression")),
    Case("an unknown kind", "kind='cells' needs to be one of auto, expression, tabular",
         cli_message="--kind cells needs to be one of auto, expression, tabular",
         cli=lambda t, r: ["train", _big_table(t), "-c", "label", "--kind", "cells", "--out", t / "newrun"],
         api=lambda t, r: scdiff.ConditionalDiffusion(pd.read_csv(_big_table(t)), condition="label",
                                                      kind="cells")),
    Case("a table column of dates", "column 'visit' holds dates",
         cli=lambda t, r: ["train", _table_with(t, visit=pd.date_range("2024-01-01", periods=60).astype(str)),
                           "-c", "label", "--out", t / "newrun"],
         api=lambda t, r: scdiff.ConditionalDiffusion(
             pd.read_csv(_big_table(t)).assign(visit=pd.date_range("2024-01-01", periods=60)),
             condition="label")),
    Case("a table column of identifiers", "looks like an identifier or free text",
         cli=lambda t, r: ["train", _table_with(t, patient=[f"p{i:03d}" for i in range(180)], copies=3),
                           "-c", "label", "--out", t / "newrun"],
         api=lambda t, r: scdiff.ConditionalDiffusion(
             pd.read_csv(_table_with(t, patient=[f"p{i:03d}" for i in range(180)], copies=3)),
             condition="label")),
    Case("a table model sampled to .h5ad", "a table model writes .csv or .parquet",
         cli=lambda t, r: ["sample", _table_run(t), "--out", t / "gen.h5ad"],
         api=lambda t, r: scdiff.ConditionalDiffusion.load(_table_run(t)).sample_to_file(t / "gen.h5ad", 5)),
    Case("a table scored without its training rows", "scoring a table needs train",
         cli_message="scoring a table needs --train",
         cli=lambda t, r: ["evaluate", _big_table(t), _big_table(t)],
         api=lambda t, r: scdiff.commands.evaluate(_big_table(t), _big_table(t))),
    Case("negative or absurd guidance", "needs finite weights >= 0, at most 100",
         cli_message="--guidance 1000000.0 needs finite weights",
         cli=lambda t, r: _sample(r, t, "--guidance", "1e6"),
         api=lambda t, r: scdiff.ConditionalDiffusion.load(r).sample(3, guidance=-1.0)),
    Case("condition given as a string", "condition needs to map each attribute to its value",
         cli_message="needs the form KEY=VALUE",
         cli=lambda t, r: _sample(r, t, "--condition", "t1"),
         api=lambda t, r: scdiff.ConditionalDiffusion.load(r).sample(3, condition="t1")),
    Case("an unknown space", "space='latnet' needs to be one of auto, gene, pca, latent",
         cli_message="--space latnet needs to be one of",
         cli=lambda t, r: _train_args(_write(t, "d.h5ad", make_counts()), "--space", "latnet"),
         api=lambda t, r: _api_train(_write(t, "d.h5ad", make_counts()), space="latnet")),
    Case("a latent space without library sizes", "space='latent' decodes counts and needs each cell's "
         "library size", cli_message="--space latent decodes counts",
         cli=lambda t, r: _train_args(_data(t, "lg.h5ad", _set_x(lambda a: log_normalize(a.X))),
                                      "--space", "latent"),
         api=lambda t, r: _api_train(_data(t, "lg.h5ad", _set_x(lambda a: log_normalize(a.X))),
                                     space="latent")),
    Case("zeros rule for a latent-space model", "zeros='cell' shapes the zeros of a gene-space model",
         cli_message="--zeros cell shapes the zeros",
         cli=lambda t, r: ["sample", _latent_run(t), "--out", t / "g.h5ad", "--zeros", "cell",
                           "--n-cells", 3],
         api=lambda t, r: scdiff.ConditionalDiffusion.load(_latent_run(t)).sample(3, zeros="cell")),
    Case("a feature table missing a category", "the feature table of 'drug' has no row for 'b'",
         cli=lambda t, r: _screen_args(t, "--condition-features", f"drug={_drug_table(t, 'feat.csv')}"),
         api=lambda t, r: _api_screen(t, condition_features={"drug": _drug_table(t, "feat.csv")})),
    Case("a malformed SMILES", "the SMILES of 'b' ('C1CC') is not a valid molecule",
         cli=lambda t, r: _screen_args(t, "--smiles", f"drug={_drug_table(t, 'smiles.csv', smiles=True)}"),
         api=lambda t, r: _api_screen(t, smiles={"drug": _drug_table(t, "smiles.csv", smiles=True)})),
    Case("a set's doses not one per member", "dose column 'dose' has '1+2+3', 3 doses for a set of 2",
         cli=lambda t, r: _screen_args(t, dose="1+2+3"),
         api=lambda t, r: _api_screen(t, dose="1+2+3")),
    Case("a latent dimension of one", "latent_dim=1 needs to be a whole number >= 2",
         cli_message="--latent-dim 1 needs",
         cli=lambda t, r: _train_args(_write(t, "d.h5ad", make_counts()), "--latent-dim", 1),
         api=lambda t, r: _api_train(_write(t, "d.h5ad", make_counts()), latent_dim=1)),
]


def _tiny_negatives(a):
    a.X = np.log1p(a.X.toarray()).astype(np.float32)
    a.X[0, :3] = -0.016  # what smoothing leaves (krumsiek11's minimum)


def _log2(a):
    x = a.X.toarray()
    a.X = np.log2(1 + x / x.sum(1, keepdims=True) * 1e4).astype(np.float32)


def _big_table(tmp):
    frame = pd.DataFrame(np.random.default_rng(0).gamma(2.0, 300.0, size=(60, 5)),
                         columns=[f"f{i}" for i in range(5)])
    frame["label"] = np.repeat(["a", "b", "c"], 20)
    frame.to_csv(tmp / "table.csv", index=False)
    return tmp / "table.csv"


def _table_with(tmp, copies: int = 1, **columns):
    """The big table (``copies`` times over) with ``columns`` added, as a .csv."""
    frame = pd.concat([pd.read_csv(_big_table(tmp))] * copies, ignore_index=True)
    for name, values in columns.items():
        frame[name] = list(values) * (len(frame) // len(values))
    frame.to_csv(tmp / "with.csv", index=False)
    return tmp / "with.csv"


_TABLE_RUNS: dict = {}


def _table_run(tmp):
    """A tiny trained table model (trained once per session, copied into ``tmp``)."""
    if "run" not in _TABLE_RUNS:
        import tempfile

        where = Path(tempfile.mkdtemp()) / "table_run"
        model = scdiff.ConditionalDiffusion(pd.read_csv(_big_table(where.parent)), condition="label")
        _TABLE_RUNS["run"] = model.train(steps=3, progress=False).save(where)
    copy = tmp / "table_run"
    copy.mkdir(exist_ok=True)
    for p in _TABLE_RUNS["run"].iterdir():
        (copy / p.name).write_bytes(p.read_bytes())
    return copy


def _two_log_files(tmp):
    paths = []
    for i in (1, 2):
        a = make_counts(seed=i)
        a.X = log_normalize(a.X)
        paths.append(_write(tmp, f"log{i}.h5ad", a))
    return paths


def _ragged_csv(tmp):
    path = tmp / "like.csv"
    path.write_text('cell_type,dose\nt0,1\nt1,"2\n')  # an unclosed quote
    return path


def _edited_run(tmp, run, edit):
    copy = tmp / "edited"
    copy.mkdir(exist_ok=True)
    for p in run.iterdir():
        (copy / p.name).write_bytes(p.read_bytes())
    cfg = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps(edit(cfg)))
    return copy


def _drop_a_gene(cfg):
    cfg["preprocess"]["genes"] = cfg["preprocess"]["genes"][:-1]
    return cfg


def _huge_width(cfg):
    cfg["network"]["width"] = 200_000  # ~6 GB of weights if it were ever built
    return cfg


def _transformer_run(cfg):
    cfg["network"].update(backbone="transformer", tokens=8, heads=4)  # as such runs were written
    return cfg


def _disk_full(self, path, *args, **kwargs):
    raise OSError(28, "No space left on device\nHDF5-DIAG: Error detected in HDF5 (1.14.3)")


def _txt(tmp):
    p = tmp / "data.txt"
    p.write_text("not expression")
    return p


def _screen(tmp: Path, dose: str) -> Path:
    """Cells of drugs a, b and the pair a+b (its doses ``dose``), with controls."""
    a = make_counts(seed=3)
    drug = np.array(["control", "a", "b", "a+b"])[np.arange(a.n_obs) % 4]
    a.obs["drug"] = drug
    a.obs["dose"] = np.where(drug == "control", "0", np.where(drug == "a+b", dose, "10"))
    return _write(tmp, "screen.h5ad", a)


def _screen_args(tmp: Path, *extra, dose: str = "10+100") -> list:
    return ["train", _screen(tmp, dose), "-c", "cell_type", "-c", "drug", "--dose", "dose",
            "--out", tmp / "newrun", "--steps", 2, *extra]


def _api_screen(tmp: Path, dose: str = "10+100", **kw):
    return scdiff.ConditionalDiffusion(read_input(_screen(tmp, dose)), condition=["cell_type", "drug"],
                                       dose="dose", **kw)


def _drug_table(tmp: Path, name: str, *, smiles: bool = False) -> Path:
    """Features of drug a only (b is missing), or SMILES of a and b (b's malformed)."""
    table = (pd.DataFrame({"smiles": ["CCO", "C1CC"]}, index=["a", "b"]) if smiles
             else pd.DataFrame({"logp": [1.0]}, index=["a"]))
    table.to_csv(tmp / name)
    return tmp / name


_LOG_RUN: dict = {}


def _log_run(tmp):
    """A run trained on log-normalised data with no library sizes (cached per session)."""
    if "path" not in _LOG_RUN:
        a = make_counts(seed=9)
        a.X = sp.csr_matrix(np.log1p(a.X.toarray()))
        del a.obs["dose"]
        m = scdiff.ConditionalDiffusion(a, condition="cell_type", width=16, depth=1)
        _LOG_RUN["path"] = m.train(steps=2, progress=False).save(tmp / "logrun")
    return _LOG_RUN["path"]


_LATENT_RUN: dict = {}


def _latent_run(tmp):
    """A run in a latent space (cached per session)."""
    if "path" not in _LATENT_RUN:
        m = scdiff.ConditionalDiffusion(make_counts(seed=10), condition="cell_type", width=16, depth=1,
                                        space="latent", latent_dim=4, autoencoder={"width": 16})
        _LATENT_RUN["path"] = m.train(steps=2, progress=False).save(tmp / "latentrun")
    return _LATENT_RUN["path"]


def _snapshot(*dirs: Path) -> dict:
    return {p: p.read_bytes() for d in dirs for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_cli_one_line_nonzero_nothing_lost(case, tiny_run, tmp_path, monkeypatch):
    run = tiny_run[0]
    args = [str(a) for a in case.cli(tmp_path, run)]
    before = _snapshot(tmp_path, run)
    folders = sorted(p for p in tmp_path.rglob("*") if p.is_dir())
    if case.patch is not None:
        case.patch(monkeypatch)
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 1, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1 and case.shown in " ".join(lines), res.output
    assert "Traceback" not in res.output
    after = _snapshot(tmp_path, run)
    assert {p: b for p, b in after.items() if p in before} == before  # no file changed
    assert not [p for p in after if p not in before and p.suffix in (".h5ad", ".safetensors")]
    assert sorted(p for p in tmp_path.rglob("*") if p.is_dir()) == folders  # no folder left behind


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_api_raises_a_specific_error(case, tiny_run, tmp_path, monkeypatch):
    if case.patch is not None:
        case.patch(monkeypatch)
    with pytest.raises(ScdiffError, match=_escape(case.message)):
        case.api(tmp_path, tiny_run[0])


def _escape(text: str) -> str:
    import re

    return re.escape(text)


def test_catalogue_is_documented():
    doc = DOCS.read_text()
    missing = [c.name for c in CASES if f"| {c.name} |" not in doc]
    assert not missing, f"add these to docs/errors.md: {missing}"
