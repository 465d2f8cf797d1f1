"""Batches as a pure function of the step number, so that a resumed run sees the same data."""
from __future__ import annotations

import torch
from torch.utils.data import Sampler


class StepBatchSampler(Sampler[list[int]]):
    """Index lists for steps ``start .. steps-1`` of one process.

    Items come from a stream of seeded per-epoch permutations; the global batch of step s is the
    stream's slice ``[s·B·W, (s+1)·B·W)`` and process r takes its r-th part of it. Neither the
    epoch length nor the batch size needs to divide anything, and no sampler state is saved.
    """

    def __init__(self, n: int, batch_size: int, steps: int, *, start: int = 0, seed: int = 0, rank: int = 0, world_size: int = 1):
        if n <= 0:
            raise ValueError("StepBatchSampler needs a non-empty dataset")
        self.n, self.batch_size, self.steps, self.start = n, batch_size, steps, start
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self._epoch, self._perm = -1, None

    def _permutation(self, epoch: int) -> torch.Tensor:
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm, self._epoch = torch.randperm(self.n, generator=g), epoch
        return self._perm

    def indices(self, step: int) -> list[int]:
        first = (step * self.world_size + self.rank) * self.batch_size
        out = []
        for pos in range(first, first + self.batch_size):
            epoch, offset = divmod(pos, self.n)
            out.append(int(self._permutation(epoch)[offset]))
        return out

    def __iter__(self):
        for step in range(self.start, self.steps):
            yield self.indices(step)

    def __len__(self) -> int:
        return max(0, self.steps - self.start)
