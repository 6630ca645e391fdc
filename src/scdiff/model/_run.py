"""The run directory: safetensors weights and a JSON config, nothing that unpickles.

Layout::

    RUN/config.json             parts (see ModelParts), training, seed, versions, hashes
    RUN/model.safetensors       raw weights
    RUN/ema.safetensors         EMA weights (used for sampling)
    RUN/space.safetensors       the fitted space (a PCA, or the autoencoder), outside gene space
    RUN/space_log.csv           the autoencoder's training log (a latent space)
    RUN/train_log.csv           step, loss, grad_norm, lr (and mmd, mmd_floor when monitored)
    RUN/loss.png                the loss curve
    RUN/checkpoint.safetensors  while training: everything a resume needs

This module also holds the run directory's policy: when a folder may be trained into,
resumed or replaced.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from scdiff._errors import InputError, RunError, arg
from scdiff.data._io import atomic_write, check_out_dir
from scdiff.model._setup import ModelParts
from scdiff.train import TrainConfig

FORMAT_VERSION = 1
CONFIG = "config.json"
WEIGHTS = {"model": "model.safetensors", "ema": "ema.safetensors", "space": "space.safetensors"}
LOG = "train_log.csv"
PLOT = "loss.png"
CHECKPOINT = "checkpoint.safetensors"
#: A checkpoint's tensors under this prefix are kept for the phase after (the fitted space).
KEEP_PREFIX = "keep."
#: The autoencoder's training log (a latent space only).
SPACE_LOG = "space_log.csv"
#: The training log's first columns; a monitored run adds mmd and mmd_floor.
LOG_COLUMNS = ("step", "loss", "grad_norm", "lr")
PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin", ".joblib")


@dataclass
class Run:
    """What a run directory holds, read back (weights checked against their hashes)."""

    parts: ModelParts
    model_state: dict[str, torch.Tensor]
    ema_state: dict[str, torch.Tensor]
    train_config: TrainConfig | None
    seed: int | None
    log: list[dict] = field(default_factory=list)
    run_id: str = ""  # names this training; generated cells carry it in their names
    space_train: TrainConfig | None = None  # the latent space's autoencoder training
    space_log: list[dict] = field(default_factory=list)


# -- files ------------------------------------------------------------------------------------
def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    from scdiff import __version__

    out = {"scdiff": __version__, "python": platform.python_version()}
    for name in ("torch", "anndata", "numpy", "pandas", "safetensors"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "unknown"
    return out


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_tensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict | None = None) -> str:
    """Write tensors as safetensors atomically; return the file's sha256."""
    clean = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    atomic_write(path, lambda tmp: save_file(clean, str(tmp), metadata=metadata))
    return sha256(path)


def write_json(obj: dict, path: Path) -> None:
    text = json.dumps(obj, indent=2, sort_keys=False)
    atomic_write(path, lambda tmp: tmp.write_text(text + "\n"))


# -- the folder's policy ----------------------------------------------------------------------
def prepare_dir(path: str | os.PathLike, *, overwrite: bool) -> Path:
    """Create the run directory; refuse one that already holds a run unless ``overwrite``."""
    path = check_out_dir(path, overwrite=overwrite, name="path", error=RunError)
    return ensure_dir(path, name="path")


def ensure_dir(path: str | os.PathLike, *, name: str = "checkpoint_dir") -> Path:
    """``path`` as a folder that exists and can be written (created when missing)."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunError(f"cannot create {path} ({err.strerror}); choose a writable {arg(name)}.") from err
    if not os.access(path, os.W_OK):
        raise RunError(f"{path} is not writable; choose a writable {arg(name)}.")
    return path


def check_training_dir(path: str | os.PathLike, *, overwrite: bool, resume: bool) -> Path:
    """Whether training may write into ``path``, decided before any data is read.

    Resuming needs the checkpoint an interrupted run left there; a fresh run needs an
    empty (or absent) folder unless ``overwrite``; a folder holding an interrupted run
    says how to continue it.
    """
    path = Path(path)
    if resume and overwrite:
        raise InputError(f"{arg('resume', True)} continues a run and {arg('overwrite', True)} "
                         "replaces it; give one of them.")
    has_checkpoint = (path / CHECKPOINT).exists()
    if resume and not has_checkpoint:
        raise InputError(f"{path} holds no checkpoint to resume from; train without "
                         f"{arg('resume', True)}.")
    if not resume:
        interrupted = has_checkpoint and not (path / CONFIG).exists()
        hint = (f"it holds an interrupted run: pass {arg('resume', True)} to continue it or "
                f"{arg('overwrite', True)} to start over" if interrupted else None)
        check_out_dir(path, overwrite=overwrite, name="out", hint=hint)
    return path


def start_training(path: str | os.PathLike, *, overwrite: bool) -> Path:
    """Make ``path`` ready for a new training run. With ``overwrite``, a run already there is
    removed first (its config first), so an interrupted replacement leaves only the new
    checkpoint, never the old model beside it."""
    path = prepare_dir(path, overwrite=overwrite)
    if overwrite:
        for name in (CONFIG, *WEIGHTS.values(), LOG, SPACE_LOG, PLOT, CHECKPOINT):
            (path / name).unlink(missing_ok=True)
    return path


# -- writing and reading a run ----------------------------------------------------------------
def write_run(path: Path, config: dict, weights: dict[str, dict[str, torch.Tensor]]) -> None:
    """Weights first, then the config with their hashes: a config always names complete files."""
    hashes = {WEIGHTS[name]: save_tensors(state, path / WEIGHTS[name]) for name, state in weights.items()}
    config = {**config, "format_version": FORMAT_VERSION, "versions": package_versions(), "files": hashes}
    write_json(config, path / CONFIG)


def save(path: str | os.PathLike, run: Run, *, overwrite: bool) -> Path:
    """Write ``run`` to ``path``: weights, config, log and loss plot; the checkpoint goes."""
    path = prepare_dir(path, overwrite=overwrite)
    config = {**run.parts.to_config(), "run_id": run.run_id,
              "train": run.train_config.to_config() if run.train_config else None, "seed": run.seed}
    if run.space_train is not None:
        config["space_train"] = run.space_train.to_config()
    weights = {"model": run.model_state, "ema": run.ema_state}
    if run.parts.space.kind != "gene":
        weights["space"] = run.parts.space.tensors()
    write_run(path, config, weights)
    if run.log:
        write_log(path / LOG, run.log)
        _write_loss_plot(path / PLOT, run.log)
    if run.space_log:
        write_log(path / SPACE_LOG, run.space_log)
    ckpt = path / CHECKPOINT
    if ckpt.exists():  # training finished: the final weights supersede the checkpoint
        ckpt.unlink()
    return path


def _write_loss_plot(path: Path, log: list[dict]) -> None:
    try:
        from scdiff.pl import loss
    except ImportError as err:  # a machine without matplotlib still writes the run
        warnings.warn(f"the loss plot was not drawn ({err}); the run is complete without it.",
                      stacklevel=3)
        return
    atomic_write(path, lambda tmp: loss(pd.DataFrame(log), save=tmp))


def load(path: str | os.PathLike) -> Run:
    """Read a run directory back; every failure is one :class:`RunError`."""
    config = read_config(path)
    try:
        parts = ModelParts.from_config(config)
        train = TrainConfig.from_config(config["train"]) if config.get("train") else None
    except (KeyError, TypeError) as err:
        raise RunError(f"{path}/config.json is missing or has unexpected entries ({err}); "
                       "the run is damaged or from another version: train again.") from err
    model_state, ema_state = read_weights(path, config, "model"), read_weights(path, config, "ema")
    _check_consistent(path, parts, model_state, ema_state)
    if parts.space.kind != "gene":
        _load_space(path, config, parts)
    log_path, space_log = Path(path) / LOG, Path(path) / SPACE_LOG
    # a run saved before run ids: its EMA weights' hash names it as well
    run_id = config.get("run_id") or str(config.get("files", {}).get(WEIGHTS["ema"], ""))[:12]
    space_train = TrainConfig.from_config(config["space_train"]) if config.get("space_train") else None
    return Run(parts, model_state, ema_state, train, config.get("seed"),
               read_log(log_path) if log_path.exists() else [], run_id, space_train,
               read_log(space_log) if space_log.exists() else [])


def _load_space(path, config: dict, parts: ModelParts) -> None:
    """The fitted space's arrays, checked against the shapes its config implies."""
    tensors = read_weights(path, config, "space")
    space = parts.space
    if space.kind == "pca":
        want = {"components": (space.latent_dim, space.n_inputs), "mean": (space.n_inputs,)}
    else:
        with torch.device("meta"):
            ae = space.build_autoencoder()
        want = {f"autoencoder.{k}": tuple(v.shape) for k, v in ae.state_dict().items()}
        want["latent_mean"] = (space.latent_dim,)
    if space.n_inputs != len(parts.preprocessor.genes) or any(
            k not in tensors or tuple(tensors[k].shape) != shape for k, shape in want.items()):
        raise RunError(f"{path}/{CONFIG} does not fit {WEIGHTS['space']} (the space's shapes differ): "
                       "it was edited or damaged; use the original run folder.")
    space.load_tensors(tensors)


def _check_consistent(path, parts: ModelParts, *weights: dict[str, torch.Tensor]) -> None:
    """The config's parts agree with each other and with the weights, checked before the
    network is built (an edited width must not allocate gigabytes first)."""
    pre, enc, net = parts.preprocessor, parts.encoder, parts.network_config
    if "backbone" in net:  # the transformer over latent tokens lost to the MLP and was removed
        raise RunError(f"{path} was trained with the {net['backbone']!r} network, which this scdiff "
                       "no longer has (docs/fidelity.md): train the model again.")
    per_gene = {"genes": len(pre.genes), "mean": len(pre.mean), "std": len(pre.std),
                "the space's input": parts.space.n_inputs}
    per_gene.update({k: len(getattr(pre, k)) for k in ("min_nonzero", "max") if getattr(pre, k)})
    problems = [f"{k} has {v}" for k, v in per_gene.items() if v != len(pre.genes)]
    if problems:
        problems.insert(0, f"{len(pre.genes)} genes listed")
    if net.get("n_genes") != parts.space.dim:
        problems.append(f"the network's width {net.get('n_genes')} is not the space's {parts.space.dim}")
    if list(net.get("n_categories", [])) != enc.n_categories or net.get("n_doses") != len(enc.dose_keys):
        problems.append("the conditions and the network's inputs differ")
    if not problems:
        try:
            with torch.device("meta"):  # shapes only, no memory
                shapes = {k: tuple(v.shape) for k, v in parts.build_network().state_dict().items()}
        except (TypeError, ValueError, RuntimeError) as err:
            problems.append(f"the network settings cannot be built ({err})")
        else:
            if any(shapes != {k: tuple(v.shape) for k, v in w.items()} for w in weights):
                problems.append("the weights' shapes are not the network's")
    if problems:
        raise RunError(f"{path}/{CONFIG} does not fit its weights ({'; '.join(problems)}): it was "
                       "edited or damaged; use the original run folder.")


def read_config(path: str | os.PathLike) -> dict:
    """Read and check a run's config.json."""
    path = Path(path)
    if not path.exists():
        raise RunError(f"run directory {path} does not exist; give the folder a trained model was "
                       "saved in.")
    if not path.is_dir():
        raise RunError(f"{path} is not a run directory; give the folder a trained model was saved in.")
    cfg_path = path / CONFIG
    if not cfg_path.exists():
        raise RunError(f"{path} holds no {CONFIG}; it is not a finished scdiff run "
                       "(was training interrupted?).")
    try:
        config = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RunError(f"{cfg_path} is not valid JSON ({err}); the run is damaged: train again.") from err
    if not isinstance(config, dict):
        raise RunError(f"{cfg_path} holds a {type(config).__name__}, not the settings of a run; "
                       "the run is damaged: train again.")
    version = config.get("format_version")
    if version != FORMAT_VERSION:
        raise RunError(
            f"{path} was written in run format {version!r}; this scdiff reads format "
            f"{FORMAT_VERSION}: install the scdiff version that wrote it, or train again."
        )
    _warn_versions(config.get("versions", {}))
    refuse_pickles(path)
    return config


def _warn_versions(recorded: dict) -> None:
    now = package_versions()
    for name in ("torch", "anndata", "numpy"):
        was, is_ = recorded.get(name), now.get(name)
        if was and is_ and was.split(".")[0] != is_.split(".")[0]:
            warnings.warn(f"run was written with {name} {was}, loaded with {is_}: results may differ.",
                          stacklevel=4)


def refuse_pickles(path: str | os.PathLike) -> None:
    """A run folder holding a pickle was not written by scdiff: refuse it outright."""
    for file in Path(path).iterdir():
        if file.suffix.lower() in PICKLE_SUFFIXES:
            raise RunError(f"{file} looks like a pickle; scdiff runs hold only safetensors and "
                           "JSON and never load pickles: remove it or use the original run.")


def read_weights(path: str | os.PathLike, config: dict, name: str) -> dict[str, torch.Tensor]:
    """Load one weight file after checking it against the hash in the config."""
    file = Path(path) / WEIGHTS[name]
    if not file.exists():
        raise RunError(f"{file} is missing; the run is incomplete: train again or copy the whole folder.")
    expected = config.get("files", {}).get(WEIGHTS[name])
    if expected is None or sha256(file) != expected:
        raise RunError(
            f"{file} does not match the hash recorded in {CONFIG}: the weights were altered or "
            "damaged; use the original run folder."
        )
    try:
        return load_file(str(file))
    except (SafetensorError, OSError) as err:
        raise RunError(f"{file} is not a valid safetensors file ({err}).") from err


# -- the training log -------------------------------------------------------------------------
def log_columns(rows: Sequence[dict]) -> list[str]:
    """Every column of the log, the fixed ones first (monitored rows add mmd, mmd_floor)."""
    return list(dict.fromkeys([*LOG_COLUMNS, *(k for row in rows for k in row)]))


def write_log(path: Path, rows: Sequence[dict]) -> None:
    buf = io.StringIO()
    pd.DataFrame(list(rows), columns=log_columns(rows)).to_csv(buf, index=False)
    atomic_write(path, lambda tmp: tmp.write_text(buf.getvalue()))


def read_log(path: Path) -> list[dict]:
    """The log's rows; a column a row lacks (a step without monitoring) stays absent."""
    frame = pd.read_csv(path)
    return [{k: v for k, v in row.items() if not (isinstance(v, float) and np.isnan(v))}
            for row in frame.to_dict("records")]


def log_tensor(rows: Sequence[dict]) -> tuple[torch.Tensor, list[str]]:
    """The log as a float64 tensor [rows, columns] (NaN where a row lacks a column)."""
    columns = log_columns(rows)
    values = [[float(r.get(c, float("nan"))) for c in columns] for r in rows]
    return torch.tensor(values, dtype=torch.float64).reshape(-1, len(columns)), columns


def log_rows(t: torch.Tensor, columns: Sequence[str] = LOG_COLUMNS) -> list[dict]:
    """Inverse of :func:`log_tensor` (a checkpoint without column names holds the fixed four)."""
    out = []
    for values in t.tolist():
        row = {c: v for c, v in zip(columns, values, strict=True) if v == v}  # NaN: not logged
        row["step"] = int(row["step"])
        out.append(row)
    return out


# -- checkpoints ------------------------------------------------------------------------------
def write_checkpoint(path: str | os.PathLike, tensors: dict[str, torch.Tensor], log: Sequence[dict],
                     meta: dict) -> None:
    """The training state (weights, EMA, optimizer, RNG, log) and what it belongs to."""
    table, columns = log_tensor(log)
    save_tensors({**tensors, "log": table}, Path(path) / CHECKPOINT,
                 metadata={"scdiff": json.dumps({**meta, "log_columns": columns})})


def read_checkpoint(path: str | os.PathLike) -> tuple[dict, dict[str, torch.Tensor], list[dict]]:
    """(meta, tensors, log rows) of the checkpoint in ``path``."""
    file = Path(path) / CHECKPOINT
    if not file.exists():
        raise RunError(f"{path} holds no checkpoint to resume from; train without {arg('resume', True)}.")
    try:
        with safe_open(str(file), framework="pt") as fh:
            meta = json.loads((fh.metadata() or {})["scdiff"])
        tensors = load_file(str(file))
        log = log_rows(tensors.pop("log"), meta.get("log_columns", LOG_COLUMNS))
    except (SafetensorError, OSError, KeyError, json.JSONDecodeError) as err:
        raise RunError(f"{file} is damaged ({type(err).__name__}); start over with "
                       f"{arg('overwrite', True)}.") from err
    return meta, tensors, log
