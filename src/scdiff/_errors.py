"""The exceptions scdiff raises on purpose.

Every message is one line that says what is wrong and what to do; the CLI
prints it as it is and exits non-zero, never with a traceback.
"""

from __future__ import annotations


class ScdiffError(Exception):
    """Base class of the errors scdiff raises for the user to read."""


class InputError(ScdiffError, ValueError):
    """The data, an option or a file the user gave cannot be used as it is."""


class RunError(ScdiffError):
    """A run directory is missing, altered, or was written by an incompatible version."""


class TrainingInterrupted(ScdiffError):
    """Training stopped on Ctrl-C or SIGTERM; a checkpoint was saved where one was asked for."""
