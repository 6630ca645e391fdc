"""The run directory: safetensors weights and a JSON config, nothing that unpickles.

Layout::

    RUN/config.json        model, schedule, preprocessing, conditions, training, versions, hashes
    RUN/model.safetensors  raw weights
    RUN/ema.safetensors    EMA weights (used for sampling)
    RUN/train_log.csv      step, loss, grad_norm, lr
    RUN/loss.png           the loss curve
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import warnings
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from scdiff._errors import RunError
from scdiff.data._io import atomic_write, check_out_dir

FORMAT_VERSION = 1
CONFIG = "config.json"
WEIGHTS = {"model": "model.safetensors", "ema": "ema.safetensors"}
LOG = "train_log.csv"
PLOT = "loss.png"
CHECKPOINT = "checkpoint.safetensors"


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


def prepare_dir(path: str | os.PathLike, *, overwrite: bool) -> Path:
    """Create the run directory; refuse one that already holds a run unless ``overwrite``."""
    path = check_out_dir(path, overwrite=overwrite, error=RunError)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunError(f"cannot create {path} ({err.strerror}); choose a writable --out.") from err
    if not os.access(path, os.W_OK):
        raise RunError(f"{path} is not writable; choose a writable --out.")
    return path


def write_run(path: Path, config: dict, weights: dict[str, dict[str, torch.Tensor]]) -> None:
    """Weights first, then the config with their hashes: a config always names complete files."""
    hashes = {WEIGHTS[name]: save_tensors(state, path / WEIGHTS[name]) for name, state in weights.items()}
    config = {**config, "format_version": FORMAT_VERSION, "versions": package_versions(), "files": hashes}
    write_json(config, path / CONFIG)


def read_config(path: str | os.PathLike) -> dict:
    """Read and check a run's config.json."""
    path = Path(path)
    if not path.exists():
        raise RunError(f"run directory {path} does not exist; give the --out of a `scdiff train`.")
    if not path.is_dir():
        raise RunError(f"{path} is not a run directory; give the --out folder of a `scdiff train`.")
    cfg_path = path / CONFIG
    if not cfg_path.exists():
        raise RunError(f"{path} holds no {CONFIG}; it is not a finished scdiff run "
                       "(was training interrupted?).")
    try:
        config = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RunError(f"{cfg_path} is not valid JSON ({err}); the run is damaged: train again.") from err
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
                          stacklevel=3)


def write_checkpoint(path: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """The training state (weights, EMA, optimizer, RNG, log) and what it belongs to."""
    save_tensors(tensors, Path(path) / CHECKPOINT, metadata={"scdiff": json.dumps(meta)})


def read_checkpoint(path: str | os.PathLike) -> tuple[dict, dict[str, torch.Tensor]]:
    file = Path(path) / CHECKPOINT
    if not file.exists():
        raise RunError(f"{path} holds no checkpoint to resume from; train without --resume.")
    try:
        from safetensors import safe_open

        with safe_open(str(file), framework="pt") as fh:
            meta = json.loads((fh.metadata() or {})["scdiff"])
        return meta, load_file(str(file))
    except (SafetensorError, OSError, KeyError, json.JSONDecodeError) as err:
        raise RunError(f"{file} is damaged ({type(err).__name__}); start over with --overwrite.") from err


def log_rows(t: torch.Tensor) -> list[dict]:
    """Training-log rows back from the [rows, 4] tensor kept in checkpoints."""
    return [{"step": int(r[0]), "loss": float(r[1]), "grad_norm": float(r[2]), "lr": float(r[3])}
            for r in t.tolist()]


PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin", ".joblib")


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
