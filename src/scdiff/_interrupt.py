"""Turn Ctrl-C and SIGTERM into a polite request to stop, so training can save a checkpoint."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


class StopFlag:
    """Set by SIGINT/SIGTERM while installed; a second Ctrl-C stops at once."""

    def __init__(self) -> None:
        self.requested = False
        self.signal_name = ""

    def __call__(self) -> bool:
        return self.requested


@contextlib.contextmanager
def graceful_stop() -> Iterator[StopFlag]:
    """Within the block, SIGINT/SIGTERM set the flag instead of killing the process.

    Outside the main thread (where handlers cannot be installed) the flag never turns
    true and signals behave as usual.
    """
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        if flag.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        flag.requested = True
        flag.signal_name = signal.Signals(signum).name

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
