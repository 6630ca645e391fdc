"""The batch size of the atlas preset: as large as the device holds, as the data allows.

A small network at batch 4096 leaves a GPU waiting on kernel launches (docs/performance.md):
the work per launch grows with the batch, so the atlas preset takes the largest power of
two that half the free GPU memory holds, measured on one probe step of the network, and
that still leaves the data at least :data:`MIN_STEPS_PER_EPOCH` steps per epoch.
"""

from __future__ import annotations

import math

import torch
from torch import nn

#: The atlas preset's batch on the CPU, where a larger one buys little (docs/performance.md).
CPU_BATCH = 4096
#: The smallest and largest batch the atlas preset takes on a GPU.
GPU_BATCH_RANGE = (4096, 65536)
#: Steps per epoch the atlas preset leaves the data at least (a batch is never most of it).
MIN_STEPS_PER_EPOCH = 32
#: The share of the free GPU memory the training batch may use.
MEMORY_SHARE = 0.5


def fit_batch(bytes_per_cell: float, free_bytes: float, n_cells: int) -> int:
    """The largest power of two of cells that ``MEMORY_SHARE`` of ``free_bytes`` holds, in
    :data:`GPU_BATCH_RANGE`, and at most ``n_cells / MIN_STEPS_PER_EPOCH`` (never below 256).

    Examples
    --------
    >>> fit_batch(100_000, 80e9, 10_000_000)  # 400k cells would fit; capped
    65536
    >>> fit_batch(100_000, 80e9, 500_000)  # 500k cells / 32 steps = 15,625 -> 8192
    8192
    """
    low, high = GPU_BATCH_RANGE
    fits = MEMORY_SHARE * free_bytes / max(bytes_per_cell, 1.0)
    batch = min(high, max(low, 2 ** int(math.floor(math.log2(max(fits, 1.0))))))
    per_epoch = 2 ** int(math.floor(math.log2(max(n_cells / MIN_STEPS_PER_EPOCH, 1.0))))
    return int(max(256, min(batch, per_epoch)))


def atlas_batch(net: nn.Module | None, device: torch.device, n_cells: int, *,
                autocast: torch.dtype | None = None, probe: int = 1024) -> int:
    """The atlas preset's batch for ``net`` on ``device``: on a GPU from the memory one
    forward and backward pass of ``probe`` cells takes (:func:`fit_batch`); on the CPU
    :data:`CPU_BATCH` (at most ``n_cells / MIN_STEPS_PER_EPOCH``; ``net`` unused, may be None)."""
    if device.type != "cuda" or net is None:
        return int(max(256, min(CPU_BATCH, n_cells // MIN_STEPS_PER_EPOCH)))
    net = net.to(device)
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    x = torch.randn(probe, net.n_genes, device=device)  # type: ignore[attr-defined]
    t = torch.zeros(probe, dtype=torch.long, device=device)
    cats = net.null_codes.to(device).expand(probe, -1)  # type: ignore[attr-defined]
    doses = torch.full((probe, len(net.dose_columns)), float("nan"), device=device)  # type: ignore[attr-defined]
    with torch.autocast("cuda", dtype=autocast or torch.float32, enabled=autocast is not None):
        out = net(x, t, cats, doses)
    out.float().pow(2).mean().backward()
    per_cell = (torch.cuda.max_memory_allocated(device) - before) / probe
    net.zero_grad(set_to_none=True)
    del x, out
    torch.cuda.empty_cache()
    free, _ = torch.cuda.mem_get_info(device)
    return fit_batch(per_cell, free, n_cells)
