"""The non-finite guard: a NaN/inf loss skips its update; too many in a row stop the run."""

import logging
from typing import Dict

import torch
from torch import Tensor

logger = logging.getLogger(__name__)


class TrainingStopped(RuntimeError):
    """Training cannot go on (for instance, too many non-finite losses); the message says why."""


class NonFiniteGuard:
    """Counts non-finite losses per update ("model", "disc"), each with its own run of consecutive failures."""

    def __init__(self, limit: int, updates: tuple = ("model", "disc")):
        self.limit = limit
        self.consecutive = {name: 0 for name in updates}
        self.total = {name: 0 for name in updates}

    def check(self, update: str, losses: Dict[str, Tensor], total: Tensor, where: str) -> bool:
        """True when ``total`` is finite (always, without looking, when ``limit`` is 0: the check is off); otherwise
        log the culprits and count, raising after ``limit`` in a row. Reading ``total`` waits for the device."""
        if self.limit == 0 or bool(torch.isfinite(total)):
            self.consecutive[update] = 0
            return True
        self.consecutive[update] += 1
        self.total[update] += 1
        names = ", ".join(name for name, value in losses.items() if not torch.isfinite(value).all())
        logger.warning("non-finite %s loss %s at %s: update skipped (%d in a row)", update, names, where,
                       self.consecutive[update])
        if self.consecutive[update] >= self.limit:
            raise TrainingStopped(f"{self.consecutive[update]} consecutive non-finite {update} losses ({names}) "
                                  f"at {where}; stopped. The last good checkpoint is kept")
        return False

    def state_dict(self) -> Dict:
        """Plain-data state."""
        return {"consecutive": dict(self.consecutive), "total": dict(self.total)}

    def load_state_dict(self, state: Dict) -> None:
        """Restore :meth:`state_dict`."""
        self.consecutive, self.total = dict(state["consecutive"]), dict(state["total"])
