"""How many CPU threads torch may use: the CPUs this process may run on, less the ones
other processes keep busy.

Torch's CPU kernels run on an OpenMP team that spins while it waits. With more threads
than idle cores, the team waits for a thread the kernel has descheduled, and a training
step that takes 50 ms alone takes a second beside one busy job (12-37x slower was
measured; docs/performance.md). So the default is the CPUs this process may use
(affinity and cgroup quota) minus those other processes are using now, at least one; it
is applied at every train and sample call, so a library that changes torch's thread
count in between (scanpy's neighbours do) cannot slow the next call down.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from scdiff._errors import InputError, ScdiffWarning, arg

#: How long the first look at the machine's load lasts (the next looks use the time since).
PROBE_SECONDS = 0.2
#: Looks closer together than this reuse the last one (the kernel counts in 10 ms ticks).
MIN_WINDOW = 1.0
#: A CPU counts as taken when others use more than this fraction of it.
BUSY_SHARE = 0.7


def available_cpus() -> int:
    """CPUs this process may use: its affinity, capped by a cgroup CPU quota if one is set
    and by ``OMP_NUM_THREADS`` if the environment sets it."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        n = os.cpu_count() or 1
    quota = _cgroup_quota()
    if quota:
        n = min(n, math.ceil(quota))
    omp = _env_int("OMP_NUM_THREADS")
    return max(1, min(n, omp) if omp else n)


def _env_int(name: str) -> int | None:
    try:
        value = int(os.environ.get(name, ""))
    except ValueError:
        return None
    return value if value >= 1 else None


def _cgroup_quota() -> float | None:
    """CPUs granted by a cgroup (v2 ``cpu.max``, v1 ``cfs_quota_us``), None when unlimited."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        return quota / period if quota > 0 else None
    except (OSError, ValueError):
        return None


def _machine_busy_seconds() -> tuple[float, int] | None:
    """(CPU-seconds all processes have run, CPUs of the machine) from /proc/stat; None elsewhere."""
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return None
    fields = [float(v) for v in lines[0].split()[1:]] + [0.0] * 10
    # user, nice, system, irq, softirq: work done here (not idle, iowait, a hypervisor's steal,
    # nor guest time, which user already counts)
    busy = fields[0] + fields[1] + fields[2] + fields[5] + fields[6]
    n_cpus = sum(1 for line in lines if line.startswith("cpu") and line[3:4].isdigit())
    return busy / os.sysconf("SC_CLK_TCK"), n_cpus


def _own_seconds() -> float:
    t = os.times()
    return t.user + t.system


@dataclass
class Load:
    """How many CPUs other processes kept busy between two looks."""

    others: float  # CPUs' worth of work by other processes
    machine_cpus: int


class LoadMeter:
    """Measures the CPUs other processes use, from the time since the last look."""

    def __init__(self) -> None:
        self._last = None
        self._load: Load | None = None

    def look(self) -> Load | None:
        """The load since the last look (after a short first look); None where unknown."""
        first = self._last is None
        now = self._read()
        if now is None:
            return None
        if first:
            time.sleep(PROBE_SECONDS)
            self._last, now = now, self._read()
        elif now[0] - self._last[0] < MIN_WINDOW and self._load is not None:
            return self._load
        (wall0, busy0, own0, _), (wall1, busy1, own1, n_cpus) = self._last, now
        self._last = now
        elapsed = max(wall1 - wall0, 1e-6)
        self._load = Load(max(0.0, (busy1 - busy0) - (own1 - own0)) / elapsed, n_cpus)
        return self._load

    @staticmethod
    def _read():
        machine = _machine_busy_seconds()
        if machine is None:
            return None
        return time.monotonic(), machine[0], _own_seconds(), machine[1]


_METER = LoadMeter()
_LAST_NOTE: list = [None]  # what the last call decided, so a note is not repeated


def check_threads(threads: int | str) -> int | str:
    """``threads`` if it is ``"auto"`` or a whole number >= 1, else one clear error."""
    if threads == "auto":
        return threads
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise InputError(f"{arg('threads', threads)} needs to be a whole number >= 1 or 'auto'.")
    return threads


def choose_threads(threads: int | str = "auto", *, meter: LoadMeter = _METER) -> tuple[int, str | None]:
    """(threads to use, a note for the user or None).

    ``"auto"``: the ``SCDIFF_THREADS`` environment variable if set, else the available CPUs
    less those other processes keep busy (at least one). A number is used as given; the
    note says when the machine is busier than it allows.
    """
    threads = check_threads(threads)
    if threads == "auto" and _env_int("SCDIFF_THREADS"):  # a job script's fixed choice
        threads = _env_int("SCDIFF_THREADS")
    cpus = available_cpus()
    load = meter.look()
    taken = 0 if load is None else int(load.others / max(1, load.machine_cpus) * cpus + (1 - BUSY_SHARE))
    free = max(1, cpus - taken)
    if threads == "auto":
        n = free
        note = (f"other processes keep {load.others:.1f} of the machine's {load.machine_cpus} CPUs "
                f"busy: using {n} of {cpus} thread(s) (a busy CPU slows every thread of torch); "
                f"set {arg('threads')} to choose." if n < cpus else None)
        return n, note
    note = (f"other processes keep {load.others:.1f} of the machine's {load.machine_cpus} CPUs busy, so "
            f"{threads} thread(s) leave none idle: torch may run many times slower; "
            f"{arg('threads', free)} would fit." if threads > free else None)
    return threads, note


def apply_threads(threads: int | str = "auto") -> int:
    """Set torch's thread count for this call (see :func:`choose_threads`); warn when the
    machine is busier than the count allows."""
    import torch

    n, note = choose_threads(threads)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    said = (threads, n, note is not None)
    if note and said != _LAST_NOTE[0]:  # once while the situation lasts, not at every chunk
        warnings.warn(ScdiffWarning(note), stacklevel=3)
    _LAST_NOTE[0] = said
    return n
