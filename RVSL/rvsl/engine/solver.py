"""Learning-rate schedules with plain-data state, so a resumed run continues them exactly."""

from bisect import bisect_right
from typing import Dict, Sequence

from torch.optim import Optimizer


class WarmupMultiStepLR:
    """Linear warm-up over the first iterations, then ``gamma`` decay at each milestone epoch.

    lr = base_lr * w(it) * gamma ** #{m in milestones : m <= epoch}, with
    w(it) = factor + (1 - factor) * it / warmup_iters for it < warmup_iters, else 1.
    Call :meth:`step` once per iteration, before the optimiser step.
    """

    def __init__(self, optimizer: Optimizer, milestones: Sequence[int], gamma: float,
                 warmup_factor: float, warmup_iters: int):
        self.optimizer = optimizer
        self.milestones = sorted(milestones)
        self.gamma = gamma
        self.warmup_factor = warmup_factor
        self.warmup_iters = warmup_iters
        self.base_lrs = [group["lr"] for group in optimizer.param_groups]
        self.iteration = 0

    def factor(self, epoch: int) -> float:
        """The multiplier of the base rate at the current iteration and ``epoch``."""
        warmup = 1.0
        if self.iteration < self.warmup_iters:
            alpha = self.iteration / self.warmup_iters
            warmup = self.warmup_factor * (1 - alpha) + alpha
        return warmup * self.gamma ** bisect_right(self.milestones, epoch)

    def step(self, epoch: int) -> None:
        """Set the rate of this iteration and advance."""
        factor = self.factor(epoch)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * factor
        self.iteration += 1

    def state_dict(self) -> Dict:
        """Plain-data state."""
        return {"iteration": self.iteration, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state: Dict) -> None:
        """Restore :meth:`state_dict`."""
        self.iteration = state["iteration"]
        self.base_lrs = list(state["base_lrs"])


class LinearDecayLR:
    """CycleGAN's discriminator schedule: constant for the first half of the epochs, then linear to zero."""

    def __init__(self, optimizer: Optimizer, max_epochs: int):
        self.optimizer = optimizer
        self.max_epochs = max_epochs
        self.base_lrs = [group["lr"] for group in optimizer.param_groups]

    def factor(self, epoch: int) -> float:
        """Multiplier of the base rate during ``epoch`` (0-based)."""
        half = self.max_epochs // 2
        return 1.0 if epoch < half else (self.max_epochs - epoch) / (self.max_epochs - half)

    def step(self, epoch: int) -> None:
        """Set the rate for ``epoch``."""
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * self.factor(epoch)

    def state_dict(self) -> Dict:
        """Plain-data state."""
        return {"base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state: Dict) -> None:
        """Restore :meth:`state_dict`."""
        self.base_lrs = list(state["base_lrs"])
