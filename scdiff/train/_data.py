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
        self, batch_size: int, generator: torch.Generator
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Endless shuffled minibatches gathered by index (one permutation per epoch).

        Epochs shorter than a batch are padded by drawing a fresh permutation, so a
        batch always has ``min(batch_size, n)`` rows.
        """
        n = len(self)
        bs = min(batch_size, n)
        device = self.x.device
        while True:
            perm = torch.randperm(n, generator=generator).to(device)
            for start in range(0, n - bs + 1, bs):
                idx = perm[start : start + bs]
                yield self.x[idx], self.cats[idx], self.doses[idx]
