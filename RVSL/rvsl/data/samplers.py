"""Batch samplers: P identities x K instances for labelled pairs, plain shuffling for real images.

Both are re-seeded from ``(seed, epoch)`` by :meth:`set_epoch`, so an epoch's batches depend on
nothing else and a resumed run sees exactly the batches of an uninterrupted one.
"""

from collections import defaultdict
from typing import Iterator, List, Sequence, Tuple

import numpy as np
from torch.utils.data import Sampler


class _EpochSampler(Sampler[List[int]]):
    """Base of the batch samplers: the batches of an epoch are drawn from ``(seed, epoch)`` alone."""

    def __init__(self, seed: int):
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose batches the next iteration yields."""
        self.epoch = epoch

    def rng(self) -> np.random.Generator:
        """A generator seeded by ``(seed, epoch)``."""
        return np.random.default_rng([self.seed, self.epoch])


class PKBatchSampler(_EpochSampler):
    """Batches of ``num_identities`` distinct identities with ``num_instances`` samples each.

    Each identity's samples are shuffled and cut into groups of K (an identity with fewer than K
    samples is drawn with replacement); batches take P identities at random among those with
    groups left, until fewer than P remain.
    """

    def __init__(self, pids: Sequence[int], num_identities: int, num_instances: int, seed: int = 0):
        self.index_by_pid = defaultdict(list)
        for index, pid in enumerate(pids):
            self.index_by_pid[int(pid)].append(index)
        if len(self.index_by_pid) < num_identities:
            raise ValueError(f"P x K sampling needs at least {num_identities} identities, "
                             f"the data has {len(self.index_by_pid)}")
        super().__init__(seed)
        self.num_identities = num_identities
        self.num_instances = num_instances

    def _batches(self) -> List[List[int]]:
        rng = self.rng()
        groups = {}
        for pid, indices in sorted(self.index_by_pid.items()):
            if len(indices) < self.num_instances:
                chosen = rng.choice(indices, size=self.num_instances, replace=True)
            else:
                chosen = rng.permutation(indices)
            usable = len(chosen) - len(chosen) % self.num_instances
            groups[pid] = [chosen[i:i + self.num_instances].tolist() for i in range(0, usable, self.num_instances)]
        batches = []
        while True:
            available = [pid for pid, left in groups.items() if left]
            if len(available) < self.num_identities:
                return batches
            picked = rng.choice(available, size=self.num_identities, replace=False)
            batches.append([index for pid in picked for index in groups[int(pid)].pop()])

    def __iter__(self) -> Iterator[List[int]]:
        return iter(self._batches())

    def __len__(self) -> int:
        return len(self._batches())


class ShuffleBatchSampler(_EpochSampler):
    """Random batches of ``batch_size`` indices, the last incomplete batch dropped; no labels read."""

    def __init__(self, num_samples: int, batch_size: int, seed: int = 0):
        if num_samples < batch_size:
            raise ValueError(f"a batch of {batch_size} needs at least {batch_size} images, the data has {num_samples}")
        super().__init__(seed)
        self.num_samples = num_samples
        self.batch_size = batch_size

    def __iter__(self) -> Iterator[List[int]]:
        order = self.rng().permutation(self.num_samples).tolist()
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            yield order[start:start + self.batch_size]

    def __len__(self) -> int:
        return self.num_samples // self.batch_size


class SeededBatches(Sampler[List[Tuple[int, int]]]):
    """Wraps a batch sampler so that each index comes with the seed of its augmentation: ``(index, seed)``.

    Seeds are drawn from ``(seed, epoch, batch number)``, so an item's augmentation depends on neither
    the number of loader workers nor their history: persistent workers and a resumed run draw exactly
    what a fresh, uninterrupted run draws.
    """

    def __init__(self, batches: _EpochSampler, seed: int):
        self.batches = batches
        self.seed = seed

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch of the wrapped sampler."""
        self.batches.set_epoch(epoch)

    def __iter__(self) -> Iterator[List[Tuple[int, int]]]:
        for number, batch in enumerate(self.batches):
            seeds = np.random.default_rng([self.seed, self.batches.epoch, number]).integers(2**62, size=len(batch))
            yield list(zip(batch, seeds.tolist()))

    def __len__(self) -> int:
        return len(self.batches)
