"""Training speed on a shared machine: torch's default thread count against scdiff's
``threads="auto"``, alone and beside a competing CPU job, in one run.

Each row times ``--steps`` training steps of the demo's model (pbmc, default network) in
a fresh process. The competing job is a second process: ``python``, a loop keeping one
core busy (any single-threaded job); ``torch``, matrix products on torch's default threads
(another torch or numpy job, the case of two trainings on one node). The "default" rows
pass torch's own thread count (all CPUs), which is what scdiff did before ``threads``
existed.

Run from the repository root (a few minutes on 2 cores; the default beside a busy core
is the slow one)::

    .venv/bin/python -m bench.threads --steps 40 --rivals python,torch
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

TIMED = """
import json, sys, time, warnings
import anndata as ad, torch
import scdiff
warnings.simplefilter("ignore")
threads = sys.argv[1] if sys.argv[1] == "auto" else int(sys.argv[1])
a = ad.read_h5ad("data_examples/pbmc_train.h5ad")
model = scdiff.ConditionalDiffusion(a, condition="cell_type")
model.train(steps=2, progress=False, threads=threads)  # warm-up
start = time.perf_counter()
model.train(steps=int(sys.argv[2]), progress=False, threads=threads)
print(json.dumps({"seconds": time.perf_counter() - start, "threads": torch.get_num_threads()}))
"""


def timed(threads: str, steps: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "SCDIFF_THREADS"}  # let "auto" decide
    done = subprocess.run([sys.executable, "-c", TIMED, threads, str(steps)], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


RIVALS = {
    "python": "while True: pass",
    "torch": "import torch\nx = torch.randn(1024, 1024)\nwhile True: x @ x",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rivals", default="python,torch")
    args = parser.parse_args()
    default = str(len(os.sched_getaffinity(0)))  # torch's default: one thread per CPU
    rows = []
    for rival_name in ["none", *args.rivals.split(",")]:
        rival = (subprocess.Popen([sys.executable, "-c", RIVALS[rival_name]])
                 if rival_name != "none" else None)
        try:
            if rival is not None:
                time.sleep(2.0)  # let the load show
            for name, threads in (("torch default", default), ("scdiff auto", "auto")):
                result = timed(threads, args.steps)
                rows.append({"competing job": rival_name, "threads setting": name,
                             "threads used": result["threads"], "seconds": result["seconds"]})
                print(rows[-1], flush=True)
        finally:
            if rival is not None:
                rival.kill()
    base = rows[1]["seconds"]  # auto, alone
    print(f"\n{args.steps} training steps of the demo's model (pbmc, 765 genes, batch 256):\n")
    print("| competing job | threads setting | threads used | seconds | x alone (auto) |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['competing job']} | {r['threads setting']} | {r['threads used']} | "
              f"{r['seconds']:.1f} | {r['seconds'] / base:.1f} |")


if __name__ == "__main__":
    main()
