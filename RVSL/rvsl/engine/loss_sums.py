"""The training loop's named losses: micro-batch means, and per-epoch sums kept on the device and read in one go."""

from collections import defaultdict
from typing import Dict, List, Sequence

import torch
from torch import Tensor

Losses = Dict[str, Tensor]


def mean_losses(parts: Sequence[Losses]) -> Losses:
    """Per name, the mean of the detached loss tensors of ``parts`` (micro-batches)."""
    return {name: sum(part[name].detach() for part in parts) / len(parts) for name in parts[0]} if parts else {}


class LossSums:
    """Per name, the running sums and counts of the model update's and the discriminator update's losses."""

    def __init__(self) -> None:
        self.sums: List[Losses] = [{}, {}]
        self.counts: List[Dict[str, int]] = [defaultdict(int), defaultdict(int)]

    def add(self, values: Sequence[Losses]) -> None:
        """Add one iteration's (model losses, discriminator losses), device tensors that are not read here."""
        for part, part_values in enumerate(values):
            for name, value in part_values.items():
                self.sums[part][name] = self.sums[part][name] + value if name in self.sums[part] else value
                self.counts[part][name] += 1

    def means(self) -> List[Dict[str, float]]:
        """The (model, discriminator) means so far, read to the host in one transfer."""
        names = [list(part) for part in self.sums]
        flat = [self.sums[i][name].float() / self.counts[i][name] for i, part in enumerate(names) for name in part]
        values = iter(torch.stack(flat).tolist() if flat else [])
        return [{name: next(values) for name in part} for part in names]
