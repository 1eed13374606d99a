"""TensorBoard event files in OUTPUT_DIR: named losses, learning rates, validation metrics, image strips."""

import logging
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Union

import torch
from torch.utils.data import DataLoader

from ..modeling import RVSL

logger = logging.getLogger(__name__)


def flatten(values: Mapping[str, Any], prefix: str = "") -> Dict[str, float]:
    """``{"val": {"fused": {"mAP": 0.5}}}`` -> ``{"val/fused/mAP": 0.5}``; non-numbers are left out."""
    flat: Dict[str, float] = {}
    for key, value in values.items():
        name = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            flat.update(flatten(value, name))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[name] = float(value)
        elif isinstance(value, torch.Tensor) and value.numel() == 1:
            flat[name] = float(value)
    return flat


@torch.no_grad()
def translation_strip(model: RVSL, images: torch.Tensor) -> torch.Tensor:
    """One row per image: input | dehazed G_C(E_H(x)) | re-hazed G_H(E_C(dehazed)), as 3 x (B*H) x (3*W) in [0, 1]."""
    was_training = model.training
    model.eval()
    try:
        dehazed, rehazed = model.cycle(images, "hazy", out_size=tuple(images.shape[-2:]))
    finally:
        model.train(was_training)
    rows = torch.cat([images.float(), dehazed.float(), rehazed.float()], dim=3)  # B x 3 x H x 3W
    return torch.cat(list(rows), dim=1).clamp(0, 1).cpu()


def strip_images(loaders: Sequence[Optional[DataLoader]], count: int = 4) -> Optional[torch.Tensor]:
    """The first ``count`` images of the first of ``loaders`` that is given and not empty, for the translation
    strip; None when there is none."""
    dataset = next((loader.dataset for loader in loaders if loader), None)
    if dataset is None:
        return None
    return torch.stack([dataset[i]["img"] for i in range(min(count, len(dataset)))])


class TensorBoardWriter:
    """Scalars and images for TensorBoard in ``output_dir`` (``tensorboard --logdir OUTPUT_DIR``).

    Without the ``tensorboard`` package it logs one warning and writes nothing.
    """

    def __init__(self, output_dir: Union[str, Path]) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is optional at run time
            logger.warning("tensorboard is not installed: no TensorBoard event files (pip install tensorboard)")
            self._writer = None
        else:
            self._writer = SummaryWriter(log_dir=str(output_dir))

    def scalars(self, step: int, values: Mapping[str, Any]) -> None:
        """Every number of a (nested) dict under its path, e.g. ``loss/reid_clear``, ``lr/model``,
        ``val/syn_val/fused/mAP``."""
        if self._writer is None:
            return
        for tag, value in flatten(values).items():
            self._writer.add_scalar(tag, value, step)
        self._writer.flush()

    def images(self, step: int, tag: str, tensor: torch.Tensor) -> None:
        """One 3 x H x W image (or a B x 3 x H x W batch) in [0, 1] under ``tag``."""
        if self._writer is None:
            return
        tensor = tensor.detach().float().clamp(0, 1).cpu()
        if tensor.dim() == 4:
            self._writer.add_images(tag, tensor, step)
        else:
            self._writer.add_image(tag, tensor, step)
        self._writer.flush()

    def close(self) -> None:
        """Flush and close the event file."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
