"""A warning when the training loss grows by orders of magnitude: divergence, before it turns into NaN.

A learning rate far too high (``SOLVER.BASE_LR 1e8``) makes the losses grow to 1e19 and more while they
are still finite, so the non-finite guard says nothing for a whole epoch. The running loss, read when the
trainer logs anyway, is compared with the loss of the run's first iteration.
"""

import logging
import math
from typing import Optional

logger = logging.getLogger(__name__)

GROWTH_LIMIT = 1e3  # the running loss over the first iteration's loss that is warned about


class LossGrowth:
    """Warns once per run when the model loss exceeds ``limit`` x the first iteration's loss."""

    def __init__(self, limit: float = GROWTH_LIMIT):
        self.limit = limit
        self.first: Optional[float] = None
        self.warned = False

    def start(self, value: float) -> None:
        """The first iteration's total model loss, the reference (the first finite positive value counts)."""
        if self.first is None and math.isfinite(value) and value > 0:
            self.first = value

    def check(self, value: float, where: str) -> bool:
        """Warn (once) when ``value`` (a running mean of the total model loss) is ``limit`` times the first;
        returns whether it is."""
        grown = self.first is not None and math.isfinite(value) and value > self.limit * self.first
        if grown and not self.warned:
            self.warned = True
            logger.warning("the loss grew from %.4g (first iteration) to %.4g at %s, more than %.0e times: training "
                           "is diverging (is SOLVER.BASE_LR too high?)", self.first, value, where, self.limit)
        return grown
