"""End-of-epoch work as small hooks (detectron2 style): validate, track the best epoch, record, save, TensorBoard.

After each epoch the trainer calls every hook's ``after_epoch(trainer, record)`` in order (validate,
choose, record, save) with the epoch's :class:`EpochRecord` (also ``trainer.record``), then every hook's
``after_checkpoint(trainer, record)`` (files derived from the saved state: history, plots), so no output
ever shows an epoch whose checkpoint is not written yet. A hook with state defines ``state_dict`` /
``load_state_dict`` and is checkpointed under its ``name``.
"""

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

from ..utils.io import write_json
from ..utils.plot import plot_losses
from .tensorboard import translation_strip

logger = logging.getLogger(__name__)


@dataclass
class EpochRecord:
    """One finished epoch, as the hooks see it: its number (from 1), its duration, the epoch means of the model's
    and the discriminators' named losses, the validation metrics (empty when it was not validated; set by
    :class:`EvalHook`) and whether it is the best so far (set by :class:`BestMetricHook`)."""

    epoch: int
    seconds: float = 0.0
    losses: Dict[str, float] = field(default_factory=dict)
    disc_losses: Dict[str, float] = field(default_factory=dict)
    metrics: Dict[str, Any] = field(default_factory=dict)
    is_best: bool = False

    def history_entry(self) -> Dict[str, Any]:
        """The epoch as ``history.json`` lists it (plain data; whether it was the best is not kept)."""
        return {"epoch": self.epoch, "seconds": self.seconds, "losses": self.losses,
                "disc_losses": self.disc_losses, "metrics": self.metrics}


class HookBase:
    """A no-op hook; subclasses override what they need."""

    name = ""

    def after_epoch(self, trainer: Any, record: EpochRecord) -> None:
        """Run after each epoch."""

    def after_checkpoint(self, trainer: Any, record: EpochRecord) -> None:
        """Run after each epoch once every hook's ``after_epoch`` (the checkpoint included) is done."""

    def after_train(self, trainer: Any) -> None:
        """Run once after the last epoch."""

    def close(self) -> None:
        """Run once when training ends, however it ends (finished, interrupted, stopped by an error)."""


class EvalHook(HookBase):
    """Validate every ``period`` epochs and after the last one (``period`` 0: only after the last)."""

    def __init__(self, period: int, validate: Callable[[], Dict]):
        self.period = period
        self.validate = validate

    def after_epoch(self, trainer: Any, record: EpochRecord) -> None:
        if record.epoch == trainer.max_epochs or (self.period and record.epoch % self.period == 0):
            record.metrics = self.validate()


def metric_value(metrics: Dict, name: str) -> Optional[float]:
    """The value of ``"source/branch/metric"`` (or ``"source/metric"``) in nested ``metrics``, None if absent."""
    node: Any = metrics
    for part in name.split("/"):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return float(node)


class BestMetricHook(HookBase):
    """Tracks ``SOLVER.BEST_METRIC`` (higher is better; ``last`` takes every epoch) and marks an improved epoch."""

    name = "best"

    def __init__(self, metric: str):
        self.metric = metric
        self.best_score = -math.inf
        self.best_epoch = 0

    def after_epoch(self, trainer: Any, record: EpochRecord) -> None:
        score = float(record.epoch) if self.metric == "last" else metric_value(record.metrics, self.metric)
        record.is_best = score is not None and score > self.best_score
        if record.is_best:
            self.best_score, self.best_epoch = score, record.epoch

    def after_train(self, trainer: Any) -> None:
        logger.info("best.pth: epoch %d (%s %.4f)", self.best_epoch, self.metric, self.best_score)

    def state_dict(self) -> Dict[str, Any]:
        """Plain-data state."""
        return {"best_score": self.best_score, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.best_score, self.best_epoch = state["best_score"], state["best_epoch"]


class HistoryHook(HookBase):
    """Keeps every epoch's record (checkpointed); writes ``history.json`` and redraws ``losses.png`` after the save."""

    name = "history"

    def __init__(self, output_dir: Any, stage: str):
        self.output_dir = output_dir
        self.stage = stage
        self.epochs: List[Dict] = []

    def after_epoch(self, trainer: Any, record: EpochRecord) -> None:
        self.epochs.append(record.history_entry())

    def after_checkpoint(self, trainer: Any, record: EpochRecord) -> None:
        write_json(self.output_dir / "history.json", {"stage": self.stage, "epochs": self.epochs})
        curves = [{"epoch": e["epoch"], "losses": {**e["losses"], **e["disc_losses"]}} for e in self.epochs]
        plot_losses(curves, self.output_dir / "losses.png", f"{self.stage} losses / first-epoch value (log scale)")

    def state_dict(self) -> Dict[str, Any]:
        """Plain-data state."""
        return {"epochs": self.epochs}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.epochs = list(state["epochs"])


class CheckpointHook(HookBase):
    """Writes ``last.pth`` after every epoch, and ``best.pth`` when the epoch is marked best.

    ``best.pth`` is written first and ``last.pth`` is then a hard link to it, so a kill between the two
    never leaves a ``last.pth`` whose recorded best epoch is missing from ``best.pth``, and the state is
    serialised once per epoch.
    """

    def after_epoch(self, trainer: Any, record: EpochRecord) -> None:
        if record.is_best:
            best = trainer.save("best")
            trainer.checkpointer.link("best", "last")
            logger.info("best.pth is now epoch %d: %s", record.epoch, best)
        else:
            trainer.save("last")


class TensorBoardHook(HookBase):
    """Every named loss, the learning rates and the validation metrics to TensorBoard each epoch, plus an
    input / dehazed / re-hazed strip of a few validation images whenever the epoch was validated."""

    def __init__(self, writer: Any, images: Optional[Any] = None):
        self.writer = writer
        self.images = images

    def after_checkpoint(self, trainer: Any, record: EpochRecord) -> None:
        rates = {name: opt.param_groups[0]["lr"] for name, opt in trainer.optimizers.items()}
        self.writer.scalars(record.epoch, {"loss": {**record.losses, **record.disc_losses},
                                           "lr": rates, "val": record.metrics})
        if record.metrics and self.images is not None:
            strip = translation_strip(trainer.model, self.images.to(trainer.device))
            self.writer.images(record.epoch, "translation", strip)

    def close(self) -> None:
        self.writer.close()
