"""Batch samplers: P identities x K instances for labelled pairs, plain shuffling for real images, and the
contiguous shards of a test set.

The training samplers are re-seeded from ``(seed, epoch)`` by :meth:`set_epoch`, so an epoch's batches
depend on nothing else and a resumed run sees exactly the batches of an uninterrupted one. In a run of
``num_replicas`` processes, every process draws the same global batches (those of one process with
``num_replicas`` times the batch) and keeps its own slice of each: process ``rank`` takes identities
``[rank * P, (rank + 1) * P)`` of a P x K batch, and images ``[rank * B, (rank + 1) * B)`` of a shuffled one.
"""

from collections import defaultdict
from typing import Iterator, List, Sequence, Tuple

import numpy as np
from torch.utils.data import Sampler


class _EpochSampler(Sampler[List[int]]):
    """Base of the batch samplers: the batches of an epoch are drawn from ``(seed, epoch)`` alone."""

    def __init__(self, seed: int, rank: int = 0, num_replicas: int = 1):
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank must be in [0, {num_replicas}), got {rank}")
        self.seed = seed
        self.epoch = 0
        self.rank = rank
        self.num_replicas = num_replicas

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose batches the next iteration yields."""
        self.epoch = epoch

    def rng(self) -> np.random.Generator:
        """A generator seeded by ``(seed, epoch)``."""
        return np.random.default_rng([self.seed, self.epoch])


class PKBatchSampler(_EpochSampler):
    """Batches of ``num_identities`` distinct identities with ``num_instances`` samples each (per process).

    Each identity's samples are shuffled and cut into groups of K (an identity with fewer than K
    samples is drawn with replacement); global batches take P x ``num_replicas`` identities at random
    among those with groups left, until fewer remain; process ``rank`` keeps its P identities of each.
    """

    def __init__(self, pids: Sequence[int], num_identities: int, num_instances: int, seed: int = 0,
                 rank: int = 0, num_replicas: int = 1):
        self.index_by_pid = defaultdict(list)
        for index, pid in enumerate(pids):
            self.index_by_pid[int(pid)].append(index)
        needed = num_identities * num_replicas
        if len(self.index_by_pid) < needed:
            processes = f" ({num_identities} for each of {num_replicas} processes)" if num_replicas > 1 else ""
            raise ValueError(f"P x K sampling needs at least {needed} identities{processes}, "
                             f"the data has {len(self.index_by_pid)}")
        super().__init__(seed, rank, num_replicas)
        self.num_identities = num_identities
        self.num_instances = num_instances

    def _batches(self) -> List[List[int]]:
        """This process's slices of the epoch's global batches."""
        share = self.num_identities * self.num_instances
        return [batch[self.rank * share:(self.rank + 1) * share] for batch in self._global_batches()]

    def _global_batches(self) -> List[List[int]]:
        """The epoch's batches of P x ``num_replicas`` identities, identity by identity."""
        num_identities = self.num_identities * self.num_replicas
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
            if len(available) < num_identities:
                return batches
            picked = rng.choice(available, size=num_identities, replace=False)
            batches.append([index for pid in picked for index in groups[int(pid)].pop()])

    def __iter__(self) -> Iterator[List[int]]:
        return iter(self._batches())

    def __len__(self) -> int:
        return len(self._batches())


class ShuffleBatchSampler(_EpochSampler):
    """Random batches of ``batch_size`` indices (per process), the last incomplete global batch dropped; no
    labels read. Global batches of ``batch_size x num_replicas``; process ``rank`` keeps its slice of each."""

    def __init__(self, num_samples: int, batch_size: int, seed: int = 0, rank: int = 0, num_replicas: int = 1):
        needed = batch_size * num_replicas
        if num_samples < needed:
            processes = f" ({batch_size} for each of {num_replicas} processes)" if num_replicas > 1 else ""
            raise ValueError(f"a batch of {needed} needs at least {needed} images{processes}, "
                             f"the data has {num_samples}")
        super().__init__(seed, rank, num_replicas)
        self.num_samples = num_samples
        self.batch_size = batch_size

    def __iter__(self) -> Iterator[List[int]]:
        order = self.rng().permutation(self.num_samples).tolist()
        step = self.batch_size * self.num_replicas
        for start in range(self.rank * self.batch_size, len(self) * step, step):
            yield order[start:start + self.batch_size]

    def __len__(self) -> int:
        return self.num_samples // (self.batch_size * self.num_replicas)


class InferenceBatchSampler(Sampler[List[int]]):
    """The test-time batches of ``batch_size`` indices in order (the last may be short), or, in a run of
    ``num_replicas`` processes, process ``rank``'s contiguous run of those same whole batches (when they do
    not divide evenly, the first processes take one more). Concatenated in rank order, the shards are the
    one-process order, and every batch is the one a single process would see."""

    def __init__(self, num_samples: int, batch_size: int, rank: int = 0, num_replicas: int = 1):
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank must be in [0, {num_replicas}), got {rank}")
        self.num_samples = num_samples
        self.batch_size = batch_size
        num_batches = -(-num_samples // batch_size)
        per_rank, extra = divmod(num_batches, num_replicas)
        self.first = rank * per_rank + min(rank, extra)
        self.last = self.first + per_rank + (rank < extra)

    def __iter__(self) -> Iterator[List[int]]:
        for batch in range(self.first, self.last):
            yield list(range(batch * self.batch_size, min((batch + 1) * self.batch_size, self.num_samples)))

    def __len__(self) -> int:
        return self.last - self.first


class SeededBatches(Sampler[List[Tuple[int, int]]]):
    """Wraps a batch sampler so that each index comes with the seed of its augmentation: ``(index, seed)``.

    Seeds are drawn from ``(seed, epoch, batch number)``, so an item's augmentation depends on neither
    the number of loader workers nor their history: persistent workers and a resumed run draw exactly
    what a fresh, uninterrupted run draws. They are drawn for the global batch and each process takes the
    seeds of its slice, so a run of several processes augments every image as one process with the global
    batch does.
    """

    def __init__(self, batches: _EpochSampler, seed: int):
        self.batches = batches
        self.seed = seed

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch of the wrapped sampler."""
        self.batches.set_epoch(epoch)

    def __iter__(self) -> Iterator[List[Tuple[int, int]]]:
        rank, processes = self.batches.rank, self.batches.num_replicas
        for number, batch in enumerate(self.batches):
            seeds = np.random.default_rng([self.seed, self.batches.epoch, number]).integers(
                2**62, size=len(batch) * processes)
            yield list(zip(batch, seeds[rank * len(batch):(rank + 1) * len(batch)].tolist()))

    def __len__(self) -> int:
        return len(self.batches)
