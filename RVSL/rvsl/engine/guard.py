"""The non-finite guard: a NaN/inf loss skips its update; too many in a row stop the run.

It also keeps what a skipped update must not change: the BatchNorm running statistics of the skipped
forward passes are put back (:func:`save_running_stats`, :func:`restore_running_stats`), and updates
that the fp16 loss scaler skips (inf/NaN gradients, :func:`scaled_step`) are counted, reported with the
epoch's summary, and stop the run when they are every update of an epoch.
"""

import logging
from collections import Counter
from typing import Dict, List, Tuple

import torch
from torch import Tensor, nn

logger = logging.getLogger(__name__)


class TrainingStopped(RuntimeError):
    """Training cannot go on (for instance, too many non-finite losses); the message says why."""


class NonFiniteGuard:
    """Counts non-finite losses per update ("model", "disc"), each with its own run of consecutive failures,
    and, per epoch, the updates applied and those skipped (by a non-finite loss or by the loss scaler)."""

    def __init__(self, limit: int, updates: tuple = ("model", "disc")):
        self.limit = limit
        self.consecutive = {name: 0 for name in updates}
        self.total = {name: 0 for name in updates}
        self.scaler_skipped = {name: 0 for name in updates}
        self.epoch: Dict[str, Counter] = {name: Counter() for name in updates}

    def check(self, update: str, losses: Dict[str, Tensor], total: Tensor, where: str) -> bool:
        """True when ``total`` is finite (always, without looking, when ``limit`` is 0: the check is off); otherwise
        log the culprits and count, raising after ``limit`` in a row. Reading ``total`` waits for the device."""
        if self.limit == 0 or bool(torch.isfinite(total)):
            self.consecutive[update] = 0
            return True
        self.consecutive[update] += 1
        self.total[update] += 1
        self.epoch[update]["non-finite"] += 1
        names = ", ".join(name for name, value in losses.items() if not torch.isfinite(value).all())
        logger.warning("non-finite %s loss %s at %s: update skipped (%d in a row)", update, names, where,
                       self.consecutive[update])
        if self.consecutive[update] >= self.limit:
            raise TrainingStopped(f"{self.consecutive[update]} consecutive non-finite {update} losses ({names}) "
                                  f"at {where}; stopped. The last good checkpoint is kept")
        return False

    def stepped(self, update: str, applied: bool) -> bool:
        """Record whether the optimiser step of ``update`` was applied (False: the loss scaler skipped it)."""
        self.epoch[update]["applied" if applied else "scaler"] += 1
        if not applied:
            self.scaler_skipped[update] += 1
        return applied

    def end_epoch(self, where: str) -> str:
        """The epoch's skipped updates as a summary ("" when none); raises :class:`TrainingStopped` when every
        attempted update of one kind was skipped. The epoch's counts start again."""
        counts, self.epoch = self.epoch, {name: Counter() for name in self.epoch}
        parts = []
        for update, count in counts.items():
            skipped = count["non-finite"] + count["scaler"]
            if skipped:
                parts.append(f"{update} {skipped} of {skipped + count['applied']} skipped ({count['scaler']} by the "
                             f"fp16 loss scaler, {count['non-finite']} non-finite losses)")
        summary = "; ".join(parts)
        for update, count in counts.items():
            if count["non-finite"] + count["scaler"] and not count["applied"]:
                raise TrainingStopped(f"every {update} update of {where} was skipped ({summary}); stopped. "
                                      "The last good checkpoint is kept")
        return summary

    def state_dict(self) -> Dict:
        """Plain-data state."""
        return {"consecutive": dict(self.consecutive), "total": dict(self.total),
                "scaler_skipped": dict(self.scaler_skipped)}

    def load_state_dict(self, state: Dict) -> None:
        """Restore :meth:`state_dict` (a state without the scaler's count, from an older run, counts from 0)."""
        self.consecutive, self.total = dict(state["consecutive"]), dict(state["total"])
        self.scaler_skipped = dict(state.get("scaler_skipped", {name: 0 for name in self.total}))


# First loss scale of fp16 training. With the loss weights of 100 (translation, cycle), torch's default
# 2**16 overflows the fp16 gradients of the first updates, which the scaler then skips (see the README's
# GPU section); from 2**8 it still doubles the scale after 2,000 finite updates.
GRAD_SCALE_START = 2.0 ** 8


def grad_scaler(device: torch.device, enabled: bool) -> torch.amp.GradScaler:
    """The loss scaler of one update: active for fp16 autocast (``enabled``), starting at ``GRAD_SCALE_START``."""
    return torch.amp.GradScaler(device.type, init_scale=GRAD_SCALE_START, enabled=enabled)


def scaled_step(optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler) -> bool:
    """Step ``optimizer`` through ``scaler`` and update the scale; whether the step was applied.

    An enabled (fp16) scaler skips the step when the gradients hold inf/NaN and then lowers its scale, so a
    lower scale after the update means a skipped step (reading the scale waits for the device).
    """
    before = scaler.get_scale() if scaler.is_enabled() else None
    scaler.step(optimizer)
    scaler.update()
    return before is None or scaler.get_scale() >= before


RunningStats = List[Tuple[List[Tensor], Tensor]]


def _running_buffers(module: nn.Module) -> Dict[torch.dtype, List[Tensor]]:
    """The BatchNorm running statistics (mean, variance, batch count) of ``module``, grouped by dtype."""
    groups: Dict[torch.dtype, List[Tensor]] = {}
    for layer in module.modules():
        if isinstance(layer, nn.modules.batchnorm._NormBase) and layer.track_running_stats:
            for buffer in (layer.running_mean, layer.running_var, layer.num_batches_tracked):
                if buffer is not None:
                    groups.setdefault(buffer.dtype, []).append(buffer)
    return groups


def save_running_stats(module: nn.Module) -> RunningStats:
    """A copy of ``module``'s BatchNorm running statistics (one concatenation per dtype: a few device copies)."""
    return [(buffers, torch.cat([b.detach().reshape(-1) for b in buffers]))
            for buffers in _running_buffers(module).values()]


@torch.no_grad()
def restore_running_stats(saved: RunningStats) -> None:
    """Put back the statistics of :func:`save_running_stats` (after a skipped update's forward passes)."""
    for buffers, flat in saved:
        for buffer, value in zip(buffers, flat.split([b.numel() for b in buffers])):
            buffer.copy_(value.view_as(buffer))
