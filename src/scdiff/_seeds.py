"""Seeds derived from the user's one seed, each random stream with its own recipe.

The formulas are those every recorded run was made with: changing one changes which
batches, buffers or resumed streams a seed gives, so they are fixed here once.
"""

from __future__ import annotations

#: Two primes that keep derived seeds apart for any realistic seed, epoch, rank or step.
LARGE_PRIME = 1_000_003
SMALL_PRIME = 7_919
#: Separates a backed buffer's seed across epochs.
EPOCH_PRIME = 104_729


def epoch_seed(seed: int, epoch: int) -> int:
    """The permutation of the training cells (or row blocks) in ``epoch``."""
    return seed * LARGE_PRIME + epoch


def rank_seed(seed: int, rank: int) -> int:
    """The batch order of one process of a distributed run."""
    return seed + SMALL_PRIME * rank


def buffer_seed(seed: int, epoch: int, buffer: int) -> int:
    """The shuffle within one buffer of backed rows."""
    return seed * SMALL_PRIME + epoch * EPOCH_PRIME + buffer


def resume_seed(seed: int, rank: int, step: int) -> int:
    """Fresh streams of a rank other than 0 resuming from rank 0's checkpoint."""
    return int(seed) + LARGE_PRIME * int(rank) + SMALL_PRIME * int(step)


def noise_seed(seed: int, epoch: int, batch: int) -> int:
    """The noise drawn for batch ``batch`` of ``epoch`` (cells known up to a posterior)."""
    return (seed * LARGE_PRIME + epoch) * EPOCH_PRIME + batch
