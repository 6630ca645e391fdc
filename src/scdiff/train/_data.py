"""Training tensors and minibatches: slices of whole tensors, never per-cell Python.

On a GPU the whole set lives on the device when it fits (a minibatch is then one
index gather there); otherwise it stays in pinned host memory and each minibatch is
gathered on the host into one of two pinned buffers and copied without blocking.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from scdiff._seeds import epoch_seed, noise_seed

#: Fraction of the GPU's free memory the training set may take before it stays on the host.
DEVICE_FRACTION = 0.5


@dataclass
class CellTensors:
    """Standardised expression with its encoded conditions, one row per cell.

    ``device`` is where minibatches go; ``None`` means where the tensors are.

    Examples
    --------
    >>> data = CellTensors(torch.randn(100, 20), torch.zeros(100, 1, dtype=torch.long),
    ...                    torch.zeros(100, 0))
    >>> x, cats, doses = next(data.batches(32, seed=0))
    >>> x.shape
    torch.Size([32, 20])
    """

    x: torch.Tensor  # float32 [n, genes]
    cats: torch.Tensor  # int64 [n, K]
    doses: torch.Tensor  # float32 [n, D]
    device: torch.device | None = None

    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.x, self.cats, self.doses))

    def to(self, device: torch.device) -> CellTensors:
        """The set on ``device`` when it fits there, else pinned on the host feeding ``device``."""
        if device.type != "cuda":
            return CellTensors(self.x.to(device), self.cats.to(device), self.doses.to(device))
        free, _ = torch.cuda.mem_get_info(device)
        if self.nbytes <= DEVICE_FRACTION * free:
            return CellTensors(
                *(t.pin_memory().to(device, non_blocking=True) for t in (self.x, self.cats, self.doses))
            )
        return CellTensors(self.x, self.cats, self.doses, device=device)

    def shard(self, rank: int, world_size: int) -> CellTensors:
        """Every ``world_size``-th cell from ``rank``: each process sees its own shard."""
        if world_size == 1:
            return self
        return CellTensors(self.x[rank::world_size], self.cats[rank::world_size],
                           self.doses[rank::world_size], self.device)

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
        here = self.x.device
        gather = _HostToDevice(self, bs) if self.device is not None and self.device != here else None
        while True:
            gen = torch.Generator().manual_seed(epoch_seed(seed, epoch))
            perm = torch.randperm(n, generator=gen).to(here)
            for i in range(offset, per_epoch):
                idx = perm[i * bs : (i + 1) * bs]
                batch = gather(idx) if gather is not None else (self.x[idx], self.cats[idx], self.doses[idx])
                yield self._finish(batch, idx, seed, epoch, i)
            epoch, offset = epoch + 1, 0

    def _finish(self, batch, idx: torch.Tensor, seed: int, epoch: int, i: int):
        """The minibatch as yielded (a subclass may add to it)."""
        return batch


@dataclass
class PosteriorCells(CellTensors):
    """Cells known up to a Gaussian: each minibatch draws ``x + spread * noise`` afresh.

    The training cells of a latent space: ``x`` the encoder's posterior means, ``spread``
    its posterior standard deviations (in the same standardised units). The noise of batch
    ``i`` of an epoch comes from (seed, epoch, i) alone, so a resumed run draws what an
    uninterrupted one would have.

    Examples
    --------
    >>> cells = PosteriorCells(torch.zeros(8, 2), torch.zeros(8, 1, dtype=torch.long), torch.zeros(8, 0),
    ...                        spread=torch.ones(8, 2))
    >>> float(next(cells.batches(4, seed=0))[0].abs().sum()) > 0
    True
    """

    spread: torch.Tensor | None = None

    def to(self, device: torch.device) -> PosteriorCells:
        moved = super().to(device)
        return PosteriorCells(moved.x, moved.cats, moved.doses, moved.device,
                              spread=self.spread.to(moved.x.device))

    def shard(self, rank: int, world_size: int) -> PosteriorCells:
        if world_size == 1:
            return self
        part = super().shard(rank, world_size)
        return PosteriorCells(part.x, part.cats, part.doses, part.device,
                              spread=self.spread[rank::world_size])

    def _finish(self, batch, idx: torch.Tensor, seed: int, epoch: int, i: int):
        x, cats, doses = batch
        gen = torch.Generator().manual_seed(noise_seed(seed, epoch, i))
        noise = torch.randn(x.shape, generator=gen).to(x.device)
        return x + self.spread[idx.to(self.spread.device)].to(x.device) * noise, cats, doses


class _HostToDevice:
    """Gathers rows into two alternating pinned buffers and copies them without blocking.

    A buffer is reused only after the event recorded behind its last copy has passed,
    so the host never overwrites rows the device has not read yet.
    """

    def __init__(self, data: CellTensors, rows: int) -> None:
        self.data, self.device = data, data.device
        self.buffers = [
            tuple(torch.empty((rows, *t.shape[1:]), dtype=t.dtype).pin_memory()
                  for t in (data.x, data.cats, data.doses))
            for _ in range(2)
        ]
        self.events: list[torch.cuda.Event | None] = [None, None]
        self.turn = 0

    def __call__(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        k, self.turn = self.turn, 1 - self.turn
        if self.events[k] is not None:
            self.events[k].synchronize()
        out = []
        for src, buf in zip((self.data.x, self.data.cats, self.data.doses), self.buffers[k], strict=True):
            torch.index_select(src, 0, idx, out=buf[: len(idx)])
            out.append(buf[: len(idx)].to(self.device, non_blocking=True))
        event = torch.cuda.Event()
        event.record()
        self.events[k] = event
        return out[0], out[1], out[2]
