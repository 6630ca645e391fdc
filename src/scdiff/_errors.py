"""The exceptions and warnings scdiff raises on purpose.

Every message is one line that says what is wrong and what to do. Where it names a
parameter the user can change, it does so through :func:`arg`: a Python user reads
``overwrite=True``, and the command line's one error boundary spells the same mention
as its flag (``--overwrite``), so each reader sees the names they type.
"""

from __future__ import annotations

import re
from collections.abc import Callable

# Control characters that never occur in user text delimit a parameter mention.
_OPEN, _CLOSE, _SEP = "\x02", "\x03", "\x1f"
_MENTION = re.compile(f"{_OPEN}([^{_CLOSE}]*){_CLOSE}")
_NO_VALUE = object()


def arg(name: str, value: object = _NO_VALUE) -> str:
    """A mention of the parameter ``name`` (set to ``value``) inside a message.

    Examples
    --------
    >>> str(InputError(f"out.h5ad exists; pass {arg('overwrite', True)}."))
    'out.h5ad exists; pass overwrite=True.'
    """
    text = name if value is _NO_VALUE else f"{name}{_SEP}{value!r}"
    return f"{_OPEN}{text}{_CLOSE}"


def render(template: str, spell: Callable[[str, str | None], str] | None = None) -> str:
    """The message with each mention spelled by ``spell(name, value_repr)`` (Python's by default)."""
    def one(match: re.Match) -> str:
        name, _, value = match.group(1).partition(_SEP)
        if spell is not None:
            return spell(name, value if _SEP in match.group(1) else None)
        return f"{name}={value}" if _SEP in match.group(1) else name

    return _MENTION.sub(one, template)


class _Spoken:
    """Keeps the template with its mentions; ``str()`` is the Python reading."""

    template: str

    def _keep(self, message: str) -> str:
        self.template = message
        return render(message)

    def spoken(self, spell: Callable[[str, str | None], str]) -> str:
        """The message with its parameter mentions spelled by ``spell`` (the CLI's flags)."""
        return render(self.template, spell)


class ScdiffError(_Spoken, Exception):
    """Base class of the errors scdiff raises for the user to read."""

    def __init__(self, message: str = "") -> None:
        super().__init__(self._keep(message))


class InputError(ScdiffError, ValueError):
    """The data, an option or a file the user gave cannot be used as it is."""


class RunError(ScdiffError):
    """A run directory is missing, altered, or was written by an incompatible version."""


class TrainingInterrupted(ScdiffError):
    """Training stopped on Ctrl-C or SIGTERM; a checkpoint was saved where one was asked for."""


class ScdiffWarning(_Spoken, UserWarning):
    """A warning whose message may mention parameters (see :func:`arg`)."""

    def __init__(self, message: str = "") -> None:
        super().__init__(self._keep(message))
