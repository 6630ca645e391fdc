"""The default training's wall time and peak memory on the bundled examples: what a user
waits for after ``scdiff train DATA --condition ...`` with nothing else given.

Each row is one ``scdiff train`` in a fresh process (the CLI as a user runs it, with its
imports and the run directory written), timed from outside; the peak resident memory is
the child's. The reference row trains the pbmc model for 200 steps in the same run, so
the ratio column compares machines and loads: a default run costs that many short runs.

Run from the repository root (about five minutes on 2 cores)::

    .venv/bin/python -m bench.train_time
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data_examples"
#: name -> (file, condition flags) of the bundled examples.
EXAMPLES = {
    "pbmc": ("pbmc_train.h5ad", ["--condition", "cell_type"]),
    "simulated": ("simulated_train.h5ad",
                  ["--condition", "cell_type", "--condition", "drug", "--dose", "dose"]),
    "immune_wide": ("immune_wide_train.h5ad", ["--condition", "cluster"]),
}


#: Runs the CLI in this process, then writes the process's own peak resident memory (kB).
WRAPPED = """
import resource, runpy, sys
peak_file, sys.argv = sys.argv[1], ["scdiff", *sys.argv[2:]]
try:
    runpy.run_module("scdiff", run_name="__main__")
finally:
    open(peak_file, "w").write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))
"""


def timed_train(data: str, flags: list[str], extra: list[str]) -> dict:
    """Seconds, peak MB and the trained run's space and steps of one ``scdiff train``."""
    with tempfile.TemporaryDirectory() as tmp:
        out, peak = Path(tmp) / "run", Path(tmp) / "peak"
        cmd = [sys.executable, "-c", WRAPPED, str(peak), "train", str(DATA / data), *flags,
               "--out", str(out), "--quiet", *extra]
        start = time.perf_counter()
        subprocess.run(cmd, check=True, cwd=ROOT)
        seconds = time.perf_counter() - start
        config = json.loads((out / "config.json").read_text())
        peak_mb = int(peak.read_text()) / 1024
    return {"seconds": seconds, "peak_mb": peak_mb, "space": config["space"]["kind"],
            "steps": config["train"]["steps"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", default=",".join(EXAMPLES))
    args = parser.parse_args()
    ref = timed_train(*EXAMPLES["pbmc"], ["--steps", "200"])["seconds"]
    print(f"reference: pbmc, 200 steps, {ref:.1f} s\n")
    print("| example | space | steps | seconds | peak MB | x reference |")
    print("|---|---|---|---|---|---|")
    for name in args.examples.split(","):
        row = timed_train(*EXAMPLES[name], [])
        print(f"| {name} | {row['space']} | {row['steps']} | {row['seconds']:.1f} | "
              f"{row['peak_mb']:.0f} | {row['seconds'] / ref:.2f} |", flush=True)


if __name__ == "__main__":
    main()
