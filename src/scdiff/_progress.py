"""A rich progress bar for long work (training, sampling); silent when disabled."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class _Bar:
    def __init__(self, progress: Progress | None, task) -> None:
        self._progress, self._task = progress, task

    def advance(self, n: int = 1, **fields) -> None:
        if self._progress is not None:
            self._progress.update(self._task, advance=n, **fields)

    def update(self, completed: int, **fields) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=completed, **fields)


@contextlib.contextmanager
def progress_bar(description: str, total: int, *, enabled: bool, show_loss: bool = False) -> Iterator[_Bar]:
    """Context manager yielding a bar with ``advance``/``update``; a no-op when not enabled."""
    if not enabled:
        yield _Bar(None, None)
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
