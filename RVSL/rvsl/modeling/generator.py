"""The generators G_H and G_C: a small U-Net decoder from encoder features back to an image."""

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..utils.errors import InputError


def run_block(block: nn.Module, x: torch.Tensor, recompute: bool) -> torch.Tensor:
    """``block(x)``; with ``recompute`` while gradients are on, its activations are recomputed in the backward
    pass instead of stored (activation checkpointing)."""
    if recompute and torch.is_grad_enabled():
        return checkpoint(block, x, use_reentrant=False)
    return block(x)


class DoubleConv(nn.Sequential):
    """(3x3 conv with bias, BatchNorm, ReLU) twice; keeps the spatial size."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


# MODEL.GENERATOR: how a generator upsamples and ends.
#   "rvsl": bilinear resizing (align_corners False) to the skip's and the output's size, then a sigmoid.
#   "reference": as the reference code's generators (whose weights were trained so): bilinear x2 with aligned
#   corners, zero-padded (or cropped) to the skip's and the output's size, and no final activation; the
#   raw output is trained against [0, 1] targets, and in eval mode it is clamped to [0, 1], the range
#   every written image, image-quality figure and exported graph expects.
GENERATOR_STYLES = ("rvsl", "reference")


def _upsample_reference(x: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """x2 bilinear with aligned corners, then zero-padded (negative: cropped) around to ``size``."""
    x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
    dy, dx = size[0] - x.shape[-2], size[1] - x.shape[-1]
    return F.pad(x, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])


class Generator(nn.Module):
    """U-Net decoder: DoubleConv(R1) at H/4, up x2, concat F1, DoubleConv, up x2, DoubleConv, 1x1 conv, output.

    Takes the encoder's skip ``F1`` (64 ch, H/2) and ``R1`` (H/4) and returns an RGB image: in [0, 1]
    through a sigmoid (``style`` "rvsl"), or the reference's unbounded output, clamped to [0, 1] in eval
    mode (``style`` "reference"; see ``GENERATOR_STYLES``).
    """

    def __init__(self, r1_channels: int, f1_channels: int = 64, channels: int = 64, style: str = "rvsl") -> None:
        super().__init__()
        if style not in GENERATOR_STYLES:
            raise InputError(f"MODEL.GENERATOR is {style!r}; expected one of {', '.join(GENERATOR_STYLES)}")
        self.style = style
        self.block1 = DoubleConv(r1_channels, channels)
        self.block2 = DoubleConv(channels + f1_channels, channels)
        self.block3 = DoubleConv(channels, channels)
        self.to_rgb = nn.Conv2d(channels, 3, 1)
        self.recompute: Tuple[str, ...] = ()  # blocks recomputed in the backward pass (MODEL.ACTIVATION_CHECKPOINT)

    def forward(self, f1: torch.Tensor, r1: torch.Tensor, out_size: Optional[Tuple[int, int]] = None) -> torch.Tensor:
        """Render an image of ``out_size`` (default: twice F1's size) from the skip F1 and the features R1."""
        if out_size is None:
            out_size = (2 * f1.shape[-2], 2 * f1.shape[-1])
        x = run_block(self.block1, r1, "block1" in self.recompute)
        x = self._upsample(x, tuple(f1.shape[-2:]))
        x = run_block(self.block2, torch.cat([x, f1], dim=1), "block2" in self.recompute)
        x = self._upsample(x, tuple(out_size))
        x = self.to_rgb(run_block(self.block3, x, "block3" in self.recompute))  # the full-resolution block
        if self.style == "rvsl":
            return torch.sigmoid(x)
        return x if self.training else x.clamp(0.0, 1.0)

    def _upsample(self, x: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
        """``x`` brought up to ``size`` as ``style`` says."""
        if self.style == "reference":
            return _upsample_reference(x, size)
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
