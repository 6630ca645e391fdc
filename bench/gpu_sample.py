"""1M cells sampled on one device: the reverse process alone, and end to end into an .h5ad.

A model of the default size is trained briefly on synthetic counts (the weights' quality
does not change the cost), then ``--cells`` cells are generated with the few-step solver
and guidance, in batches of ``--batch``: first the reverse process alone (network and
solver, the cells left on the device), then ``sample_to_h5ad`` end to end (read back,
zeros and counts, written in chunks). Issue 19's GPU target: 1M cells, 10 steps, guidance,
in at most 10 s of GPU time.

    python -m bench.gpu_sample --device cuda --cells 1000000 --steps 10
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
import warnings

import numpy as np
import torch

import scdiff
from scdiff.model import _generate
from scdiff.train import copy_with_state


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--cells", type=int, default=1_000_000)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--sampler", default="unipc")
    p.add_argument("--batch", type=int, default=131072)
    p.add_argument("--guidance", type=float, default=2.0)
    p.add_argument("--precision", default="bf16")
    p.add_argument("--train-steps", type=int, default=200)
    args = p.parse_args()
    warnings.simplefilter("ignore")
    from bench._atlas import synthetic_counts

    model = scdiff.ConditionalDiffusion(synthetic_counts(20_000, 2000, 0.1), condition="cell_type")
    model.train(steps=args.train_steps, batch_size=4096, device=args.device, progress=False)
    options = dict(guidance=args.guidance, steps=args.steps, sampler=args.sampler, device=args.device,
                   precision=args.precision, batch_size=args.batch)
    how = _generate.Sampling(**options).resolve(model.parts)
    codes, doses = model.encoder.encode(model.encoder.training_obs(args.cells, np.random.default_rng(0)))
    net = copy_with_state(model.network, model.ema_state)
    _generate.generate(model.parts, net, codes[: args.batch], doses[: args.batch], how)  # warm-up
    _sync(args.device)
    t0 = time.perf_counter()
    _generate.generate(model.parts, net, codes, doses, how)
    _sync(args.device)
    reverse_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        model.sample_to_h5ad(os.path.join(tmp, "fake.h5ad"), args.cells, **options)
        end_to_end_s = time.perf_counter() - t0
    print(f"| {args.cells:,} cells, {args.sampler} {args.steps} steps, guidance {args.guidance:g}, "
          f"{args.precision}, batch {args.batch:,}, {args.device} | reverse process "
          f"{reverse_s:.1f} s ({args.cells / reverse_s:,.0f} cells/s) | end to end to .h5ad "
          f"{end_to_end_s:.1f} s | peak host memory "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB |")


if __name__ == "__main__":
    main()
