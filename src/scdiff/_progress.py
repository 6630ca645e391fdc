"""Progress of long work (training, sampling): a rich bar on a terminal or in a notebook,
a plain line every ``SCDIFF_PROGRESS_EVERY`` seconds (default 30) on stderr otherwise
(nohup, Slurm, a pipe), so a batch job's log shows where it is. Silent when disabled."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

#: Seconds between two plain progress lines when stderr is not a terminal.
PLAIN_EVERY = 30.0


class _Bar:
    """The rich bar's handle (or nothing, when progress is off)."""

    def __init__(self, progress: Progress | None, task) -> None:
        self._progress, self._task = progress, task

    def advance(self, n: int = 1, **fields) -> None:
        if self._progress is not None:
            self._progress.update(self._task, advance=n, **fields)

    def update(self, completed: int, **fields) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=completed, **fields)


class _Lines:
    """Plain lines for logs, e.g.
    ``training: 1200/4312 (28%) | loss 0.81 | 12 steps/s | elapsed 1m40s, ETA 4m20s``."""

    def __init__(self, description: str, total: int, every: float, stream) -> None:
        self.description, self.total, self.every, self.stream = description, max(int(total), 1), every, stream
        self.completed, self.fields = 0, {}
        self.start = self.last = time.monotonic()
        self.first = None  # (time, completed) when the first progress arrived, for the rate

    def advance(self, n: int = 1, **fields) -> None:
        self.update(self.completed + n, **fields)

    def update(self, completed: int, **fields) -> None:
        now = time.monotonic()
        if self.first is None:
            self.first = (now, completed)
        self.completed = int(completed)
        self.fields.update({k: v for k, v in fields.items() if v})
        if now - self.last >= self.every:
            self.last = now
            self.write(now)

    def write(self, now: float) -> None:
        done = self.completed - self.first[1] if self.first else 0
        rate = done / max(now - self.first[0], 1e-9) if self.first else 0.0
        eta = (self.total - self.completed) / rate if rate > 0 else float("nan")
        extra = "".join(f" | {k} {v}" if k != "rate" else f" | {v}" for k, v in self.fields.items())
        print(f"{self.description}: {self.completed}/{self.total} "
              f"({100 * self.completed / self.total:.0f}%){extra} | elapsed {_clock(now - self.start)}, "
              f"ETA {_clock(eta)}", file=self.stream, flush=True)


def _clock(seconds: float) -> str:
    if seconds != seconds:  # NaN: no rate yet
        return "?"
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def _every() -> float:
    """Seconds between plain lines: ``SCDIFF_PROGRESS_EVERY`` when it is a number >= 0."""
    try:
        return max(0.0, float(os.environ.get("SCDIFF_PROGRESS_EVERY", PLAIN_EVERY)))
    except ValueError:
        return PLAIN_EVERY


def _interactive() -> bool:
    console = Console(stderr=True)
    return console.is_terminal or console.is_jupyter


@contextlib.contextmanager
def progress_bar(description: str, total: int, *, enabled: bool, show_loss: bool = False) -> Iterator:
    """Context manager yielding a bar with ``advance``/``update``; a no-op when not enabled."""
    if not enabled:
        yield _Bar(None, None)
        return
    if not _interactive():
        bar = _Lines(description, total, _every(), sys.stderr)
        yield bar
        bar.write(time.monotonic())  # the last line: where it ended, and how long it took
        return
    columns = [
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
    ]
    if show_loss:
        columns.append(TextColumn("loss {task.fields[loss]}"))
    columns += [TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn()]
    with Progress(*columns, transient=False) as progress:
        task = progress.add_task(description, total=total, loss="-", rate="")
        yield _Bar(progress, task)
