"""Which cells each comparison uses: the reference, the floor's second real sample, the capped sets.

The fair floor
--------------
Every score compares a *reference* sample of real cells ``R`` with another
sample ``O``: the generated cells for the score, a second, disjoint sample of
real cells for the floor. Both comparisons share the same ``R``, the same PCA
(fitted on ``R`` only, so neither sample was seen by it) and the same kernel
bandwidth, and the generated cells and the second real sample are subsampled
to the same size, because MMD, energy distance and classifier AUC all depend
on sample size.

- With ``train``: ``R`` is the real (held-out) cells, the second sample is the
  training cells of the same group.
- Without: the real cells of each group are split in two halves (seeded);
  ``R`` is one half, the second sample the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from scdiff.data import subsample

#: Groups with fewer cells than this in any sample are skipped (5-fold CV needs 5).
MIN_CELLS = 5


@dataclass
class GroupPlan:
    """Row indices of one group in each sample."""

    ref: np.ndarray  # into real
    other: np.ndarray  # into train if given, else into real
    gen: np.ndarray  # into generated
    train: np.ndarray  # into train (capped), empty without train
    n_real: int  # real cells of the group before capping or splitting


@dataclass
class Plan:
    groups: dict[str, GroupPlan] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    capped: list[str] = field(default_factory=list)

    def indices(self, part: str) -> tuple[np.ndarray, np.ndarray]:
        """Concatenated indices of ``part`` over groups, and each index's group label."""
        idx = [getattr(p, part) for p in self.groups.values()]
        labels = [np.full(len(i), g, dtype=object) for g, i in zip(self.groups, idx, strict=True)]
        if not idx:
            return np.zeros(0, dtype=int), np.zeros(0, dtype=object)
        return np.concatenate(idx).astype(int), np.concatenate(labels)


def make_plan(groups: list[str], lab_real: np.ndarray, lab_gen: np.ndarray,
              lab_train: np.ndarray | None, *, max_cells: int, seed: int) -> Plan:
    """Pick the cells of every group for the scored and the floor comparisons (see module doc)."""
    plan = Plan()
    for g in groups:
        rng = group_rng(seed, g)
        real_g, gen_g = np.flatnonzero(lab_real == g), np.flatnonzero(lab_gen == g)
        if lab_train is not None:
            train_g = np.flatnonzero(lab_train == g)
            ref_pool, other_pool = real_g, train_g
        else:
            train_g = np.zeros(0, dtype=int)
            perm = rng.permutation(real_g)
            half = (len(perm) + 1) // 2
            ref_pool, other_pool = np.sort(perm[:half]), np.sort(perm[half:])
        ref = subsample(ref_pool, max_cells, rng)
        n_cmp = min(len(gen_g), len(other_pool), max_cells)
        if len(ref) < MIN_CELLS or n_cmp < MIN_CELLS:
            extra = f", train {len(train_g)}" if lab_train is not None else ""
            plan.skipped.append(f"{g} (real {len(real_g)}, generated {len(gen_g)}{extra})")
            continue
        if max(len(real_g), len(gen_g), len(train_g)) > max_cells:
            plan.capped.append(g)
        plan.groups[g] = GroupPlan(
            ref=ref, other=subsample(other_pool, n_cmp, rng), gen=subsample(gen_g, n_cmp, rng),
            train=subsample(train_g, max_cells, rng), n_real=len(real_g),
        )
    return plan


def group_rng(seed: int, group: str, stream: int = 0) -> np.random.Generator:
    """A generator that depends on the seed and the group name only, not on other groups."""
    key = [int(b) for b in group.encode()] or [0]
    return np.random.default_rng([seed, stream, *key])
