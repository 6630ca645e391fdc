"""Many files out of core against one in memory: the trainer's cells/s, measured in one run.

Four synthetic files of ``n_cells`` cells each (sparse counts, as ``bench._atlas`` makes
them; one per donor) are trained on together out of core (``read_backed([...])``: blocks
of rows read from every file, shuffled across files); the reference is the same network
trained on one of the files loaded in memory. Each rate is the steady state: the time of
``steps`` more steps (a run of ``2 steps`` minus a run of ``steps``), so set-up, the
preprocessing pass and the first buffer cancel out. Each side runs in a fresh process,
whose peak resident memory is reported.
"""

from __future__ import annotations

from pathlib import Path

TIMED = """
import json, resource, sys, time
import anndata as ad
import scdiff
from scdiff.data._backed import read_backed
mode, steps, batch, paths = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
data = read_backed(paths) if mode == "files" else ad.read_h5ad(paths[0])
model = scdiff.ConditionalDiffusion(data, condition="cell_type")
took = []
for n in (steps, 2 * steps):
    t0 = time.perf_counter()
    model.train(steps=n, batch_size=batch, progress=False, device="cpu")
    took.append(time.perf_counter() - t0)
print(json.dumps({"cells_s": steps * batch / (took[1] - took[0]),
                  "peak_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))
"""


def run(n_cells: int, n_genes: int, density: float, folder: str, *, steps: int = 300,
        batch: int = 256) -> str:
    """Make (or reuse) four files, time both trainers; a markdown table."""
    from bench._atlas import _child, make_atlas

    folder_ = Path(folder)
    folder_.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(4):
        paths.append(folder_ / f"donor{i}-{n_cells}x{n_genes}.h5ad")
        if not paths[-1].exists():
            make_atlas(paths[-1], n_cells, n_genes, density, seed=i)
    memory = _child(TIMED, "memory", steps, batch, paths[0])
    files = _child(TIMED, "files", steps, batch, *paths)
    return "\n".join([
        f"**4 files x {n_cells:,} cells x {n_genes} genes ({density:.0%} non-zero), trained out of "
        f"core together, against one file in memory; {steps} steps of batch {batch}, steady state**",
        "",
        "| trainer | cells/s | peak resident memory |",
        "|---|---|---|",
        f"| one file in memory | {memory['cells_s']:,.0f} | {memory['peak_gib']:.2f} GiB |",
        f"| 4 files out of core, shuffled across files | {files['cells_s']:,.0f} | "
        f"{files['peak_gib']:.2f} GiB |",
        "",
        f"Out of core / in memory: {files['cells_s'] / memory['cells_s']:.2f}.",
    ])
