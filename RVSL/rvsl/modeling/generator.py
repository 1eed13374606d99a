"""The generators G_H and G_C: a small U-Net decoder from encoder features back to an image (DESIGN.md section 2)."""

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint


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


class Generator(nn.Module):
    """U-Net decoder: DoubleConv(R1) at H/4, up x2, concat F1, DoubleConv, up x2, DoubleConv, 1x1 conv, sigmoid.

    Takes the encoder's skip ``F1`` (64 ch, H/2) and ``R1`` (H/4) and returns an RGB image in [0, 1].
    """

    def __init__(self, r1_channels: int, f1_channels: int = 64, channels: int = 64) -> None:
        super().__init__()
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
        x = F.interpolate(x, size=f1.shape[-2:], mode="bilinear", align_corners=False)
        x = run_block(self.block2, torch.cat([x, f1], dim=1), "block2" in self.recompute)
        x = F.interpolate(x, size=tuple(out_size), mode="bilinear", align_corners=False)
        x = run_block(self.block3, x, "block3" in self.recompute)  # the full-resolution block
        return torch.sigmoid(self.to_rgb(x))
