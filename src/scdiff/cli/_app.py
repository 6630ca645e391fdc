"""The typer app. Commands parse options and call the library; logic lives in scdiff."""

from __future__ import annotations

import functools
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

import scdiff
from scdiff._errors import InputError, ScdiffError, TrainingInterrupted
from scdiff.data._io import check_out_dir

app = typer.Typer(
    name="scdiff", no_args_is_help=True, add_completion=True, pretty_exceptions_enable=False,
    help="Train conditional diffusion models on single-cell data and generate cells.",
)
out_console = Console()
err_console = Console(stderr=True)

# -- options shared by several commands (defined once) --------------------------------------
Conditions = Annotated[list[str] | None, typer.Option(
    "--condition", "-c", help="Categorical obs column (train) or KEY=VALUE (sample); repeatable.")]
Doses = Annotated[list[str] | None, typer.Option(
    "--dose", help="Continuous obs column (train) or KEY=VALUE (sample); repeatable.")]
Seed = Annotated[int, typer.Option(help="Random seed.")]
Device = Annotated[str, typer.Option(help="auto (CUDA when present), cpu, cuda or cuda:N.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
Overwrite = Annotated[bool, typer.Option(help="Replace an existing output.")]


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    err_console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)


def _boundary(func):
    """The one error boundary: library errors become one line and a non-zero exit."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        warnings.showwarning = _show_warning
        try:
            return func(*args, **kwargs)
        except TrainingInterrupted as err:
            err_console.print(f"[bold yellow]interrupted:[/] {err}", highlight=False, soft_wrap=True)
            raise typer.Exit(130) from None
        except ScdiffError as err:
            err_console.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err_console.print("[bold red]interrupted[/]", highlight=False)
            raise typer.Exit(130) from None
        except typer.Exit:
            raise
        except Exception as err:  # an unexpected failure still gets one line
            if os.environ.get("SCDIFF_DEBUG"):
                raise
            err_console.print(
                f"[bold red]internal error:[/] {type(err).__name__}: {err} "
                "(set SCDIFF_DEBUG=1 to see the traceback, and please report it)",
                highlight=False, soft_wrap=True,
            )
            raise typer.Exit(2) from None

    return wrapper


def _version(value: bool) -> None:
    if value:
        out_console.print(f"scdiff {scdiff.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
) -> None:
    """scdiff: conditional diffusion for single-cell expression."""


@app.command()
@_boundary
def train(
    data: Annotated[Path, typer.Argument(help=".h5ad, .csv or .parquet with cells as rows.")],
    condition: Conditions = None,
    dose: Doses = None,
    layer: Annotated[str | None, typer.Option(help="Use adata.layers[LAYER] instead of X.")] = None,
    genes: Annotated[int, typer.Option(help="Keep this many highly variable genes.")] = 2000,
    out: Annotated[Path | None, typer.Option(help="Run directory (default runs/<data name>).")] = None,
    epochs: Annotated[int | None, typer.Option(help="Passes over the data (default: from its size).")] = None,
    steps: Annotated[int | None, typer.Option(help="Optimizer steps (instead of --epochs).")] = None,
    batch_size: Annotated[int, typer.Option(help="Cells per step.")] = 256,
    lr: Annotated[float | None, typer.Option(
        help="Peak learning rate (default 1e-3 at batch 256, x sqrt(batch / 256)).")] = None,
    device: Device = "auto",
    precision: Annotated[str, typer.Option(help="auto, fp32, bf16 or fp16.")] = "auto",
    seed: Seed = 0,
    overwrite: Overwrite = False,
    resume: Annotated[bool, typer.Option(
        help="Continue the interrupted run in --out from its checkpoint (same data and options).")] = False,
    backed: Annotated[bool, typer.Option(
        help="Read the .h5ad in row chunks instead of loading it (data larger than memory).")] = False,
    monitor: Annotated[float | None, typer.Option(
        help="Hold out this fraction of cells and log the MMD of a small generated sample to them.")] = None,
    monitor_every: Annotated[int, typer.Option(help="Steps between two monitor evaluations.")] = 250,
    patience: Annotated[int | None, typer.Option(
        help="With --monitor: stop after this many evaluations without improvement.")] = None,
    loss_weighting: Annotated[str, typer.Option(
        help="Timestep weights of the loss: snr_cap (nearly clean steps capped at SNR 5), "
             "min_snr (also noisy steps down; measured better on panels with many more genes "
             "than cells) or none.")] = "snr_cap",
    quiet: Quiet = False,
) -> None:
    """Train a model on DATA and write a run directory (Ctrl-C saves a checkpoint).

    Under ``torchrun --nproc_per_node=N -m scdiff train ...`` the N processes train
    together (torch.distributed); only rank 0 writes the run.
    """
    from scdiff import _run
    from scdiff.data import read_input
    from scdiff.diffusion._schedule import check_loss_weighting
    from scdiff.train import is_main_process

    check_loss_weighting(loss_weighting)  # before anything is read or written
    out = out if out is not None else Path("runs") / data.stem
    main = is_main_process()  # under torchrun only rank 0 checks, writes and prints
    if resume and overwrite:
        raise InputError("--resume continues a run and --overwrite replaces it; give one of them.")
    has_checkpoint = (out / _run.CHECKPOINT).exists()
    if resume and not has_checkpoint:
        raise InputError(f"{out} holds no checkpoint to resume from; train without --resume.")
    if main and not resume:
        interrupted = has_checkpoint and not (out / _run.CONFIG).exists()
        check_out_dir(out, overwrite=overwrite, hint=(
            "it holds an interrupted run: pass --resume to continue it or --overwrite to start over"
            if interrupted else "choose another --out or pass --overwrite"))
    if backed:
        from scdiff.data._backed import read_backed

        adata = read_backed(data)
    else:
        adata = read_input(data, conditions=list(condition or []) + list(dose or []))
    model = scdiff.ConditionalDiffusion(adata, condition=condition, dose=dose, layer=layer, n_genes=genes)
    if main and not resume:
        _run.prepare_dir(out, overwrite=overwrite)
    model.train(epochs=epochs, steps=steps, batch_size=batch_size, lr=lr, device=device,
                precision=precision, seed=seed, progress=not quiet, checkpoint_dir=out, resume=resume,
                monitor=monitor, monitor_every=monitor_every, patience=patience,
                loss_weighting=loss_weighting)
    if not main:
        return
    model.save(out, overwrite=True)
    if not quiet:
        out_console.print(f"wrote run [bold]{out}[/] ({model})", highlight=False)


#: Above this many cells, `sample` streams its output to disk chunk by chunk.
STREAM_CHUNK = 32768


@app.command()
@_boundary
def sample(
    run: Annotated[Path, typer.Argument(help="Run directory written by `scdiff train`.")],
    out: Annotated[Path, typer.Option(help="Output .h5ad (or .csv).")] = Path("generated.h5ad"),
    n_cells: Annotated[int | None, typer.Option(help="Cells to generate (default 1000).")] = None,
    condition: Conditions = None,
    dose: Doses = None,
    like: Annotated[Path | None, typer.Option(
        help="Generate as many cells per condition as this file holds (reads only its obs).")] = None,
    from_: Annotated[Path | None, typer.Option(
        "--from", help="Translate these cells to --condition/--dose (counterfactual).")] = None,
    strength: Annotated[float, typer.Option(
        help="With --from: how far the cells are noised, in (0, 1]; lower keeps more identity.")] = 0.6,
    guidance: Annotated[list[str] | None, typer.Option(
        help="Guidance weight (1 = conditional), or KEY=W per attribute; repeatable.")] = None,
    steps: Annotated[int | None, typer.Option(help="Sampler steps (default 50 DDIM, 1000 DDPM).")] = None,
    sampler: Annotated[str, typer.Option(help="ddim or ddpm.")] = "ddim",
    seed: Seed = 0,
    device: Device = "auto",
    counts: Annotated[bool, typer.Option(
        "--counts", help="Write integer counts in X (log-normalised values in layers['log1p']).")] = False,
    zeros: Annotated[str, typer.Option(
        help="How small values become exact zeros: auto, cell (values below one read at a drawn "
             "library size become 0 or one read, keeping the mean), gene (below half the gene's "
             "smallest training value) or none.")] = "auto",
    overwrite: Overwrite = False,
    quiet: Quiet = False,
) -> None:
    """Generate cells from a trained run."""
    from scdiff._parse import parse_assignments, parse_doses, parse_guidance
    from scdiff.data import read_input
    from scdiff.data._io import check_output, read_obs, write_h5ad

    check_output(out, overwrite=overwrite, suffixes=(".h5ad", ".csv"))
    cond = parse_assignments(condition, option="--condition")
    doses = parse_doses(dose)
    weights = parse_guidance(guidance)
    model = scdiff.ConditionalDiffusion.load(run)
    ref = read_obs(like) if like is not None else None
    n_out = len(ref) if ref is not None else (n_cells or 1000)
    if from_ is None and out.suffix.lower() == ".h5ad" and n_out > STREAM_CHUNK:
        # many cells: generate and write chunk by chunk, so memory stays bounded
        model.sample_to_h5ad(out, None if ref is not None else n_cells, like=ref,
                             chunk_size=STREAM_CHUNK, condition=cond, dose=doses, guidance=weights,
                             steps=steps, sampler=sampler, seed=seed, device=device, counts=counts,
                             zeros=zeros, overwrite=overwrite, progress=not quiet)
        if not quiet:
            out_console.print(f"wrote {n_out} cells to [bold]{out}[/] in chunks of {STREAM_CHUNK}",
                              highlight=False)
        return
    source = read_input(from_) if from_ is not None else None
    fake = model.sample(n_cells, condition=cond, dose=doses, like=ref, from_=source, strength=strength,
                        guidance=weights, steps=steps, sampler=sampler, seed=seed, device=device,
                        progress=not quiet, counts=counts, zeros=zeros)
    write_h5ad(fake, out, overwrite=overwrite)
    if not quiet:
        out_console.print(f"wrote {fake.n_obs} cells x {fake.n_vars} genes to [bold]{out}[/]",
                          highlight=False)


@app.command()
@_boundary
def info(
    run: Annotated[Path, typer.Argument(help="Run directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show what a run holds."""
    details = scdiff.ConditionalDiffusion.load(run).info()
    if as_json:
        sys.stdout.write(json.dumps(details, indent=2) + "\n")
        return
    table = Table(title=f"scdiff run {run}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    for key, value in details.items():
        if isinstance(value, dict):
            value = "\n".join(f"{k}: {_short(v)}" for k, v in value.items()) or "none"
        table.add_row(key, _short(value))
    out_console.print(table)


def _short(value) -> str:
    if isinstance(value, list) and len(value) > 12:
        return ", ".join(map(str, value[:12])) + f", ... ({len(value)} in all)"
    if isinstance(value, list):
        return ", ".join(map(str, value))
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def main() -> None:
    """Entry point of the ``scdiff`` command and ``python -m scdiff``."""
    app()


Table_ = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


@app.command()
@_boundary
def evaluate(
    real: Annotated[Path, typer.Argument(help="Real cells (.h5ad), log-normalised or counts.")],
    generated: Annotated[Path, typer.Argument(help="Generated cells (.h5ad) in the same genes.")],
    condition: Conditions = None,
    train: Annotated[Path | None, typer.Option(
        help="The training cells: the floor becomes train vs real, and memorisation is checked.")] = None,
    out: Annotated[Path | None, typer.Option(help="Write a report (markdown, JSON, PNG) here.")] = None,
    max_cells: Annotated[int, typer.Option(help="Cap of cells per condition (subsampled).")] = 20000,
    seed: Seed = 0,
    overwrite: Overwrite = False,
    as_json: Table_ = False,
) -> None:
    """Score GENERATED against REAL, beside the real-vs-real floor."""
    from scdiff._compare import as_log_space
    from scdiff.data import read_input

    if out is not None:
        check_out_dir(out, overwrite=overwrite)
    real_a = as_log_space(read_input(real), source=str(real))
    fake_a = as_log_space(read_input(generated), source=str(generated))
    train_a = as_log_space(read_input(train), source=str(train)) if train else None
    table = scdiff.evaluate(real_a, fake_a, condition=condition, train=train_a, max_cells=max_cells,
                            seed=seed)
    if out is not None:
        scdiff.evaluate.write_report(out, real_a, fake_a, table, condition=condition,
                                     overwrite=overwrite, seed=seed)
    _print_overall(table, as_json=as_json, title=f"{generated.name} vs {real.name}")


def _print_overall(table, *, as_json: bool, title: str) -> None:
    overall = table[table["group"] == "overall"]
    if as_json:
        sys.stdout.write(overall.to_json(orient="records", indent=2) + "\n")
        return
    view = Table(title=title)
    for col in ("metric", "value", "floor", "ratio to floor", "better"):
        view.add_column(col, justify="left" if col in ("metric", "better") else "right")
    for row in overall.itertuples():
        view.add_row(row.metric, f"{row.value:.4g}", f"{row.floor:.4g}", f"{row.ratio:.2f}",
                     str(row.better))
    out_console.print(view)


@app.command()
@_boundary
def benchmark(
    train: Annotated[Path, typer.Argument(help="Training cells (.h5ad).")],
    test: Annotated[Path, typer.Argument(help="Held-out real cells (.h5ad).")],
    condition: Conditions = None,
    dose: Doses = None,
    out: Annotated[Path | None, typer.Option(help="Write the table, run and report here.")] = None,
    layer: Annotated[str | None, typer.Option(help="Use adata.layers[LAYER] instead of X.")] = None,
    genes: Annotated[int, typer.Option(help="Keep this many highly variable genes.")] = 2000,
    steps: Annotated[int | None, typer.Option(help="Training steps (default: from data size).")] = None,
    seed: Seed = 0,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
    as_json: Table_ = False,
) -> None:
    """Train scdiff on TRAIN, generate like TEST, and compare with baselines and the floor."""
    from scdiff._benchmark import benchmark as run_benchmark
    from scdiff.data import read_input

    if not condition:
        raise InputError("benchmark needs --condition (the obs column to generate by).")
    names = list(condition) + list(dose or [])
    table = run_benchmark(read_input(train, conditions=names), read_input(test, conditions=names),
                          condition=condition, dose=dose, out=out, layer=layer, n_genes=genes,
                          train_kwargs={"steps": steps}, seed=seed, overwrite=overwrite,
                          progress=not quiet)
    if as_json:
        sys.stdout.write(table.to_json(orient="index", indent=2) + "\n")
        return
    view = Table(title=f"benchmark on {test.name} (floor: {train.name} vs {test.name})")
    view.add_column("metric")
    for col in table.columns:
        view.add_column(str(col), justify="right")
    for metric, row in table.iterrows():
        view.add_row(str(metric), *(f"{v:.4g}" if isinstance(v, float) else str(v) for v in row))
    out_console.print(view)


@app.command("dose-response")
@_boundary
def dose_response(
    run: Annotated[Path, typer.Argument(help="Run directory written by `scdiff train`.")],
    condition: Conditions = None,
    dose_key: Annotated[str | None, typer.Option(
        "--dose", help="The dose to vary (default: the only one).")] = None,
    doses: Annotated[str | None, typer.Option(
        help="Comma-separated dose grid (default: 0 and 11 log-spaced).")] = None,
    gene: Annotated[list[str] | None, typer.Option(
        help="Gene to report; repeatable (default: top --n-genes).")] = None,
    n_genes: Annotated[int, typer.Option(help="Without --gene: the genes that change most.")] = 10,
    n_cells: Annotated[int, typer.Option(help="Cells generated per dose.")] = 200,
    out: Annotated[Path, typer.Option(
        help="Table (.csv); a plot is written beside it (.png).")] = Path("dose_response.csv"),
    seed: Seed = 0,
    device: Device = "auto",
    overwrite: Overwrite = False,
    quiet: Quiet = False,
) -> None:
    """Generated mean expression of genes across a dose grid, as a table and a plot."""
    from scdiff._parse import _number, parse_assignments
    from scdiff.perturb import dose_response as run_dose_response
    from scdiff.perturb import plot_dose_response

    if out.suffix != ".csv":
        raise InputError(f"--out {out} needs to end in .csv.")
    plot = out.with_suffix(".png")
    if not overwrite and (out.exists() or plot.exists()):
        raise InputError(f"{out} or {plot} exists; pass --overwrite to replace it.")
    grid = [_number(d.strip(), what="--doses") for d in doses.split(",")] if doses else None
    model = scdiff.ConditionalDiffusion.load(run)
    table = run_dose_response(model, condition=parse_assignments(condition, option="--condition"),
                              dose_key=dose_key, doses=grid, genes=list(gene) if gene else n_genes,
                              n_cells=n_cells, seed=seed, device=device)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out)
    plot_dose_response(table, show=False, save=plot)
    if not quiet:
        out_console.print(f"wrote {out} ({len(table)} doses x {table.shape[1]} genes) and {plot}",
                          highlight=False)
