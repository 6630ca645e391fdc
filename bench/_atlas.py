"""Data larger than memory: train from a backed 1M-cell file and sample 1M cells to disk.

The synthetic atlas (sparse counts, ``density`` non-zero, a cell type per cell) is
written chunk by chunk and kept between runs; it is never committed. Training and
sampling each run in a fresh process, so each peak resident memory is its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROWS = 65536


def _chunks(n_cells: int, n_genes: int, density: float, n_types: int, seed: int):
    """AnnData chunks of Poisson-like counts in CSR, each type with its own gene profile."""
    import anndata as ad
    import pandas as pd
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    profile = rng.gamma(0.5, 1.0, size=(n_types, n_genes))
    p_nonzero = np.clip(profile / profile.mean() * density, 0, 0.9).astype(np.float32)
    var = pd.DataFrame(index=[f"g{i}" for i in range(n_genes)])
    cats = [f"type{i}" for i in range(n_types)]
    for start in range(0, n_cells, ROWS):
        rows = min(ROWS, n_cells - start)
        types = rng.integers(0, n_types, rows)
        mask = rng.random((rows, n_genes), dtype=np.float32) < p_nonzero[types]
        r, c = np.nonzero(mask)
        vals = 1 + rng.poisson(3 * profile[types[r], c]).astype(np.float32)
        X = sp.csr_matrix((vals, (r, c)), shape=(rows, n_genes))
        obs = pd.DataFrame({"cell_type": pd.Categorical([cats[t] for t in types], categories=cats)},
                           index=[f"c{start + i}" for i in range(rows)])
        yield ad.AnnData(X=X, obs=obs, var=var)


def make_atlas(path: Path, n_cells: int, n_genes: int, density: float, n_types: int = 20,
               seed: int = 0) -> None:
    """The synthetic atlas written chunk by chunk (never a partial file)."""
    from scdiff.data._io import atomic_write
    from scdiff.data._write import write_h5ad_chunks

    atomic_write(path, lambda tmp: write_h5ad_chunks(tmp, _chunks(n_cells, n_genes, density, n_types,
                                                                  seed)))


def synthetic_counts(n_cells: int, n_genes: int, density: float, n_types: int = 20, seed: int = 0):
    """The same cells as :func:`make_atlas` writes, in memory (for a small number of cells)."""
    import anndata as ad

    return ad.concat(list(_chunks(n_cells, n_genes, density, n_types, seed)), merge="same")


TRAIN = """
import json, resource, sys, time, torch
import scdiff
from scdiff.data._backed import read_backed
path, run, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
t0 = time.perf_counter()
model = scdiff.ConditionalDiffusion(read_backed(path), condition="cell_type")
t1 = time.perf_counter()
model.train(steps=steps, batch_size=256, progress=False, device="cpu")
t2 = time.perf_counter()
model.save(run, overwrite=True)
print(json.dumps({"fit_s": t1 - t0, "train_s": t2 - t1, "steps": steps,
                  "peak_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))
"""

SAMPLE = """
import json, resource, sys, time, torch
import numpy as np
import scdiff
from scdiff.model import _generate
from scdiff.train import copy_with_state
run, out, n, steps, sampler = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
threads = torch.get_num_threads()
model = scdiff.ConditionalDiffusion.load(run)
options = dict(guidance=2.0, steps=steps, sampler=sampler, device="cpu", precision="bf16",
               threads=threads)
# the network's own work for the same cells: every forward pass of the same chunks, no I/O
how = _generate.Sampling(**options).resolve(model.parts)
frame = model.encoder.training_obs(n, np.random.default_rng(0))
codes, doses = model.encoder.encode(frame)
net = copy_with_state(model.network, model.ema_state)
t0 = time.perf_counter()
for a in range(0, n, 32768):
    _generate.generate(model.parts, net, codes[a:a + 32768], doses[a:a + 32768], how)
network_s = time.perf_counter() - t0
t0 = time.perf_counter()
model.sample_to_h5ad(out, n, overwrite=True, **options)
print(json.dumps({"sample_s": time.perf_counter() - t0, "network_s": network_s, "steps": steps,
                  "sampler": sampler, "threads": threads,
                  "peak_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))
"""


def _child(code: str, *args) -> dict:
    done = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True,
                          text=True)
    if done.returncode:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


#: The samplings timed: the 2-step DDIM of the first measurement (where the network's share
#: is smallest, the hardest case for the ratio) and the default (UniPC, 10 steps).
SAMPLINGS = (("ddim", 2), ("unipc", 10))


def run(n_cells: int, n_genes: int, density: float, folder: str, *, train_steps: int = 200,
        samplings=SAMPLINGS) -> str:
    """Make (or reuse) the atlas, train backed, sample ``n_cells`` to disk with each of
    ``samplings`` ((sampler, steps), each in a fresh process); a markdown table."""
    folder_ = Path(folder)
    folder_.mkdir(parents=True, exist_ok=True)
    data = folder_ / f"atlas-{n_cells}x{n_genes}.h5ad"
    t0 = time.perf_counter()
    if not data.exists():
        make_atlas(data, n_cells, n_genes, density)
    made = time.perf_counter() - t0
    tr = _child(TRAIN, data, folder_ / "run", train_steps)
    gb = data.stat().st_size / 2**30
    dense_gb = n_cells * n_genes * 4 / 2**30
    lines = [
        f"**data larger than memory: {n_cells:,} cells x {n_genes} genes, {density:.0%} non-zero "
        f"({gb:.2f} GiB on disk, {dense_gb:.1f} GiB as dense float32; made in {made:.0f} s)**",
        "",
        "| step | time | network alone | end to end / network | peak resident memory |",
        "|---|---|---|---|---|",
        f"| open backed + fit preprocessing (one chunked pass) | {tr['fit_s']:.0f} s | | | |",
        f"| train {tr['steps']} steps, batch 256, streamed blocks | {tr['train_s']:.0f} s | | | "
        f"{tr['peak_gib']:.2f} GiB (whole training process) |",
    ]
    for sampler, steps in samplings:
        sa = _child(SAMPLE, folder_ / "run", folder_ / "generated.h5ad", n_cells, steps, sampler)
        out_gb = (folder_ / "generated.h5ad").stat().st_size / 2**30
        lines.append(
            f"| sample {n_cells:,} cells ({sampler} {steps} steps, CFG 2, bf16, {sa['threads']} "
            f"threads) to .h5ad in chunks of 32,768 ({out_gb:.2f} GiB written) | "
            f"{sa['sample_s']:.0f} s | {sa['network_s']:.0f} s | "
            f"{sa['sample_s'] / sa['network_s']:.2f} | {sa['peak_gib']:.2f} GiB |")
    lines += ["", "Network alone: every forward pass and solver step of the same chunks, no "
              "read-back, zeros, counts or writing."]
    return "\n".join(lines)
