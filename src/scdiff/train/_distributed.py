"""torch.distributed under torchrun: one process per device, gradients all-reduced by DDP.

``torchrun --nproc_per_node=N -m scdiff train ...`` starts N copies of the command with
``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` set; :func:`distributed` turns that environment
into an initialised process group (gloo on the CPU, NCCL on GPUs) for the length of
training. The trainer then shards the data by rank and wraps the network in DDP; only
rank 0 logs, checkpoints and writes the run.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch
import torch.distributed as dist

from scdiff._errors import InputError


def world_size() -> int:
    """Processes in this job: the process group's size, else torchrun's ``WORLD_SIZE``, else 1."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """This process's rank (0 when not distributed); valid before and after training."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0"))


def is_main_process() -> bool:
    """Only rank 0 prints progress and writes files."""
    return rank() == 0


@contextlib.contextmanager
def distributed(device: torch.device) -> Iterator[torch.device]:
    """Initialise the process group when launched by torchrun; yield this rank's device.

    Outside torchrun (``WORLD_SIZE`` unset or 1) nothing happens. A group the caller
    initialised itself is used as it is and left open. On CUDA each rank takes the GPU
    ``LOCAL_RANK``.

    Examples
    --------
    >>> with distributed(torch.device("cpu")) as dev:  # a plain process: no group
    ...     dev.type
    'cpu'
    """
    if world_size() == 1:
        yield device
        return
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    own = not dist.is_initialized()
    if own:
        if not dist.is_available():
            raise InputError("this torch build has no torch.distributed; train in one process.")
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo",
                                device_id=device if device.type == "cuda" else None)
    try:
        yield device
        if own:
            # leave together: a rank tearing gloo down while another still used the group
            # aborted that one now and then ("terminate called without an active exception")
            dist.barrier()
    finally:
        if own:
            dist.destroy_process_group()
