"""Throughput and memory benchmarks of scdiff (``python -m bench``); see docs/performance.md."""
