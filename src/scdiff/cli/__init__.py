"""scdiff's command line: a thin typer shell over the library (installed as ``scdiff.cli``)."""

from scdiff.cli._app import app, main

__all__ = ["app", "main"]
