"""Training tensors and minibatches: slices of whole tensors, never per-cell Python."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch


@dataclass
class CellTensors:
    """Standardised expression with its encoded conditions, one row per cell."""

    x: torch.Tensor  # float32 [n, genes]
    cats: torch.Tensor  # int64 [n, K]
    doses: torch.Tensor  # float32 [n, D]

    def __len__(self) -> int:
        return self.x.shape[0]

    def to(self, device: torch.device) -> CellTensors:
        pin = device.type == "cuda"
        return CellTensors(
            *(t.pin_memory().to(device, non_blocking=True) if pin else t.to(device)
              for t in (self.x, self.cats, self.doses))
        )

    def shard(self, rank: int, world_size: int) -> CellTensors:
        """Every ``world_size``-th cell from ``rank``: each process sees its own shard."""
        if world_size == 1:
            return self
        return CellTensors(self.x[rank::world_size], self.cats[rank::world_size],
                           self.doses[rank::world_size])

    def batches(
        self, batch_size: int, seed: int, start_step: int = 0
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Endless shuffled minibatches gathered by index, from step ``start_step`` on.

        Each epoch's permutation depends only on (seed, epoch), so a resumed run
        continues with exactly the batches an uninterrupted one would have seen.
        Batches never straddle epochs; a trailing partial batch is skipped.
        """
        n = len(self)
        bs = min(batch_size, n)
        per_epoch = n // bs
        epoch, offset = divmod(start_step, per_epoch)
        device = self.x.device
        while True:
            gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
            perm = torch.randperm(n, generator=gen).to(device)
            for i in range(offset, per_epoch):
                idx = perm[i * bs : (i + 1) * bs]
                yield self.x[idx], self.cats[idx], self.doses[idx]
            epoch, offset = epoch + 1, 0
