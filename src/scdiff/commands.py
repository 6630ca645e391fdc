"""The ``scdiff`` commands as functions: files in, files out.

Each function here is one command of the command line, which parses its options, calls
the function and prints what it returns; everything the command line can do, Python can
do the same way. Policy (may this folder be written, resumed, replaced? stream the output
or not?) lives here and in :mod:`scdiff.model`, never in the command line.

Examples
--------
>>> import scdiff
>>> model = scdiff.commands.train("data_examples/pbmc_train.h5ad", condition="cell_type",
...                               out="runs/pbmc", steps=200)  # doctest: +SKIP
>>> scdiff.commands.sample("runs/pbmc", "gen.h5ad", like="data_examples/pbmc_test.h5ad")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from scdiff._errors import InputError, arg
from scdiff.data import as_log_space, read_input
from scdiff.data._io import (
    TABLE_SUFFIXES,
    check_out_dir,
    check_output,
    read_obs,
    read_table,
    typed_conditions,
)
from scdiff.data._table import check_kind, table_kind
from scdiff.model import ConditionalDiffusion
from scdiff.model._fit import check_options
from scdiff.model._run import check_training_dir, start_training
from scdiff.model._space import check_space
from scdiff.model._stream import SAMPLE_SUFFIXES, check_sample_suffix, sample_to_file
from scdiff.train import is_main_process

__all__ = ["benchmark", "dose_response", "evaluate", "info", "sample", "train"]


def train(
    data: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    condition: str | Sequence[str] | None = None,
    dose: str | Sequence[str] | None = None,
    out: str | os.PathLike | None = None,
    layer: str | None = None,
    n_genes: int = 2000,
    clip_negative: bool = False,
    schedule: str = "cosine",
    space: str = "auto",
    latent_dim: int | None = None,
    kind: str = "auto",
    backed: bool = False,
    overwrite: bool = False,
    resume: bool = False,
    progress: bool = True,
    condition_features: Mapping | None = None,
    smiles: Mapping | None = None,
    **options,
) -> ConditionalDiffusion:
    """Train on ``data`` and write the run to ``out`` (default ``runs/<data name>``).

    ``data`` is one file, or several ``.h5ad`` files (or a folder of them) read together
    out of core, their cells shuffled across files. ``out`` is checked before anything is
    read: it must be empty unless ``overwrite``, and ``resume`` continues the interrupted
    run it holds. ``backed`` reads one ``.h5ad`` in row chunks (data larger than memory).
    A ``.csv``/``.parquet`` file is a plain table or expression as ``kind`` says
    (:func:`scdiff.data.table_kind` decides for ``"auto"``).
    Under ``torchrun`` only rank 0 checks and writes the folder. ``options`` go to
    :meth:`ConditionalDiffusion.train`.

    Examples
    --------
    >>> scdiff.commands.train("data_examples/pbmc_train.h5ad", condition="cell_type",
    ...                       out="runs/pbmc", steps=200)  # doctest: +SKIP
    """
    check_options(**options)
    check_space(space, latent_dim)
    check_kind(kind)
    paths = [Path(data)] if isinstance(data, str | os.PathLike) else [Path(p) for p in data]
    if not paths:
        raise InputError(f"no file given in {arg('data')}; give one file or more.")
    many = len(paths) > 1 or paths[0].is_dir()
    out = Path(out) if out is not None else Path("runs") / paths[0].stem
    main = is_main_process()
    if main:
        check_training_dir(out, overwrite=overwrite, resume=resume)
    names = _as_list(condition) + _as_list(dose)
    if backed or many:
        from scdiff.data._backed import read_backed

        adata = read_backed(paths if len(paths) > 1 else paths[0])
    elif paths[0].suffix.lower() in TABLE_SUFFIXES and kind != "expression":
        adata = read_table(paths[0], conditions=names)
        if table_kind(adata, names, kind) == "tabular":
            adata = typed_conditions(adata, paths[0], names)
    else:
        adata = read_input(paths[0], conditions=names)
    model = ConditionalDiffusion(adata, condition=condition, dose=dose, layer=layer, n_genes=n_genes,
                                 clip_negative=clip_negative, schedule=schedule, space=space,
                                 latent_dim=latent_dim, kind=kind,
                                 condition_features=condition_features, smiles=smiles)
    if main and not resume:
        start_training(out, overwrite=overwrite)
    model.train(progress=progress, checkpoint_dir=out, resume=resume, **options)
    if main:
        model.save(out, overwrite=True)
    return model


def sample(
    run: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    n_cells: int | None = None,
    like: str | os.PathLike | None = None,
    from_: str | os.PathLike | None = None,
    overwrite: bool = False,
    **options,
) -> tuple[Path, int, int, str]:
    """Generate cells from the run ``run`` into ``out`` (.h5ad or .csv; a table model's rows
    into .csv or .parquet).

    ``like`` and ``from_`` are files (only ``like``'s obs is read); ``options`` go to
    :meth:`ConditionalDiffusion.sample`. Large ``.h5ad`` outputs are written chunk by
    chunk. ``out`` defaults to ``generated.h5ad`` (a table model: ``generated.csv``).
    Returns (path, cells or rows, genes or columns, the model's kind).

    Examples
    --------
    >>> scdiff.commands.sample("runs/pbmc", "gen.h5ad", like="data_examples/pbmc_test.h5ad")  # doctest: +SKIP
    """
    if out is not None:
        check_output(out, overwrite=overwrite, suffixes=SAMPLE_SUFFIXES)
    model = ConditionalDiffusion.load(run)
    if out is None:
        out = "generated.csv" if model.kind == "tabular" else "generated.h5ad"
        check_output(out, overwrite=overwrite, suffixes=SAMPLE_SUFFIXES)
    check_sample_suffix(out, tabular=model.kind == "tabular")
    ref = read_obs(like, conditions=model.encoder.keys) if like is not None else None
    source = read_input(from_) if from_ is not None else None
    path, n, _ = sample_to_file(model.sample, out, n_cells, like=ref, from_=source,
                                overwrite=overwrite, **options)
    return path, n, len(model.genes), model.kind


def info(run: str | os.PathLike) -> dict:
    """What the run ``run`` holds, as plain data.

    Examples
    --------
    >>> scdiff.commands.info("runs/pbmc")["conditions"]  # doctest: +SKIP
    """
    return ConditionalDiffusion.load(run).info()


def evaluate(
    real: str | os.PathLike,
    generated: str | os.PathLike,
    *,
    condition: str | Sequence[str] | None = None,
    train: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    overwrite: bool = False,
    seed: int = 0,
    **options,
) -> pd.DataFrame:
    """Score the file ``generated`` against the file ``real`` (counts or log-normalised).

    A plain table (a ``.csv``/``.parquet`` file :func:`scdiff.data.table_kind` calls
    tabular) is scored by :func:`scdiff.evaluate_table` instead, with ``train`` required and
    ``condition`` the column ML efficacy predicts.

    With ``out``, also write the report there (:func:`scdiff.write_report`).
    ``options`` go to :func:`scdiff.evaluate`.

    Examples
    --------
    >>> scdiff.commands.evaluate("data_examples/pbmc_test.h5ad", "gen.h5ad", condition="cell_type",
    ...                          out="report")  # doctest: +SKIP
    """
    from scdiff._report import write_report
    from scdiff.metrics import evaluate as score

    if out is not None:
        check_out_dir(out, overwrite=overwrite)
    if Path(real).suffix.lower() in TABLE_SUFFIXES:
        real_t = read_table(real, conditions=_as_list(condition))
        if table_kind(real_t, _as_list(condition)) == "tabular":
            return _evaluate_table(real_t, generated, train=train, condition=condition, out=out,
                                   overwrite=overwrite, seed=seed)
    real_a = as_log_space(read_input(real), source=str(real))
    fake_a = as_log_space(read_input(generated), source=str(generated))
    train_a = as_log_space(read_input(train), source=str(train)) if train else None
    table = score(real_a, fake_a, condition=condition, train=train_a, seed=seed, **options)
    if out is not None:
        write_report(out, real_a, fake_a, table, condition=condition, overwrite=overwrite, seed=seed)
    return table


def _evaluate_table(real: pd.DataFrame, generated, *, train, condition, out, overwrite: bool,
                    seed: int) -> pd.DataFrame:
    """:func:`scdiff.evaluate_table` on files; ``condition`` (its first key) is the target
    ML efficacy predicts."""
    from scdiff._report import write_table_report
    from scdiff.metrics import evaluate_table

    if train is None:
        raise InputError(f"scoring a table needs {arg('train')}, the rows the generator learned from "
                         "(the floor, the real model of ML efficacy, the closest-record distance).")
    keys = _as_list(condition)
    table = evaluate_table(real, read_table(generated, conditions=keys),
                           train=read_table(train, conditions=keys),
                           target=keys[0] if keys else None, seed=seed)
    if out is not None:
        write_table_report(out, table, overwrite=overwrite)
    return table


def benchmark(
    train: str | os.PathLike,
    test: str | os.PathLike,
    *,
    condition: str | Sequence[str] | None = None,
    dose: str | Sequence[str] | None = None,
    **options,
) -> pd.DataFrame:
    """Train on the file ``train``, generate like the file ``test``, score beside the baselines.

    ``options`` go to :func:`scdiff._benchmark.benchmark` (``out``, ``n_genes``,
    ``train_kwargs``, ``seed``, ...).

    Examples
    --------
    >>> scdiff.commands.benchmark("data_examples/pbmc_train.h5ad", "data_examples/pbmc_test.h5ad",
    ...                           condition="cell_type")  # doctest: +SKIP
    """
    from scdiff._benchmark import benchmark as run_benchmark

    if not condition:
        raise InputError(f"benchmark needs {arg('condition')} (the obs column to generate by).")
    names = _as_list(condition) + _as_list(dose)
    return run_benchmark(read_input(train, conditions=names), read_input(test, conditions=names),
                         condition=condition, dose=dose, **options)


def dose_response(
    run: str | os.PathLike,
    out: str | os.PathLike,
    *,
    condition: Mapping[str, str] | None = None,
    overwrite: bool = False,
    **options,
) -> tuple[pd.DataFrame, Path]:
    """The dose-response table of the run ``run`` as ``out`` (.csv), its plot beside it (.png).

    ``options`` go to :func:`scdiff.perturb.dose_response`. Returns (table, plot path).

    Examples
    --------
    >>> scdiff.commands.dose_response("runs/sim", "dr.csv", condition={"drug": "drugA"})  # doctest: +SKIP
    """
    from scdiff.perturb import dose_response as curves
    from scdiff.pl import dose_response as plot

    out = Path(out)
    if out.suffix != ".csv":
        raise InputError(f"{arg('out', str(out))} needs to end in .csv.")
    figure = out.with_suffix(".png")
    if not overwrite and (out.exists() or figure.exists()):
        raise InputError(f"{out} or {figure} exists; pass {arg('overwrite', True)} to replace it.")
    model = ConditionalDiffusion.load(run)
    table = curves(model, condition=condition, **options)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out)
    plot(table, show=False, save=figure)
    return table, figure


def _as_list(keys: str | Sequence[str] | None) -> list[str]:
    return [] if keys is None else [keys] if isinstance(keys, str) else list(keys)
