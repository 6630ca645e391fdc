"""Throughput, memory and fidelity benchmarks of scdiff (``python -m bench``, ``python -m
bench.fidelity``, ...); see docs/performance.md and docs/fidelity.md.

Benchmarks train and sample on every CPU this process may use, as torch does by default
and as every recorded figure was measured, whatever else the machine runs: scdiff's
``threads="auto"`` would otherwise leave busy cores out and, with a different thread count,
change the last bits of the results. ``SCDIFF_THREADS`` set by the caller wins.
"""

import os

try:
    _CPUS = len(os.sched_getaffinity(0))
except (AttributeError, OSError):
    _CPUS = os.cpu_count() or 1
os.environ.setdefault("SCDIFF_THREADS", str(_CPUS))
