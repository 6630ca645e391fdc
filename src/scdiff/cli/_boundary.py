"""The command line's one error boundary: library errors become one line and an exit code,
their parameter mentions spelled as this command line's flags."""

from __future__ import annotations

import ast
import functools
import os
import warnings

import typer
from rich.console import Console

from scdiff._errors import ScdiffError, ScdiffWarning, TrainingInterrupted

err_console = Console(stderr=True)

#: Python parameters whose flag is not their name with dashes for underscores.
FLAG_NAMES = {
    "n_genes": "--genes", "path": "--out", "out_dir": "--out", "checkpoint_dir": "--out",
    "from_": "--from", "dose_key": "--dose",
}


def flag(name: str, value: str | None) -> str:
    """How the command line spells the Python parameter ``name`` set to ``value`` (its repr).

    Examples
    --------
    >>> flag("overwrite", "True"), flag("device", "'cpu'"), flag("guidance", "{'drug': 1.5}")
    ('--overwrite', '--device cpu', '--guidance drug=1.5')
    """
    option = FLAG_NAMES.get(name, "--" + name.rstrip("_").replace("_", "-"))
    if value is None:
        return option
    try:
        parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        parsed = value
    if parsed is True:
        return option
    if parsed is False:
        return f"--no-{option[2:]}"
    if isinstance(parsed, dict):
        return " ".join(f"{option} {k}={v}" for k, v in parsed.items())
    return f"{option} {parsed}"


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    text = message.spoken(flag) if isinstance(message, ScdiffWarning) else str(message)
    err_console.print(f"[yellow]warning:[/] {text}", highlight=False, soft_wrap=True)


def _fail(label: str, text: str, code: int):
    err_console.print(f"[bold red]{label}:[/] {text}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def boundary(func):
    """Library errors become one line and a non-zero exit; warnings one yellow line."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        warnings.showwarning = _show_warning
        try:
            return func(*args, **kwargs)
        except TrainingInterrupted as err:
            err_console.print(f"[bold yellow]interrupted:[/] {err.spoken(flag)}", highlight=False,
                              soft_wrap=True)
            raise typer.Exit(130) from None
        except ScdiffError as err:
            raise _fail("error", err.spoken(flag), 1) from None
        except KeyboardInterrupt:
            err_console.print("[bold red]interrupted[/]", highlight=False)
            raise typer.Exit(130) from None
        except typer.Exit:
            raise
        except Exception as err:  # an unexpected failure still gets one line
            if os.environ.get("SCDIFF_DEBUG"):
                raise
            raise _fail("internal error", f"{type(err).__name__}: {err} (set SCDIFF_DEBUG=1 to see "
                        "the traceback, and please report it)", 2) from None

    return wrapper
