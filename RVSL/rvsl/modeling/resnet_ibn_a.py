"""ResNet-IBN-a (Pan et al., ECCV 2018): ResNets whose early blocks mix instance and batch norm."""

import torch
from torch import nn
from torchvision.models import ResNet, resnet50, resnet101


class IBN(nn.Module):
    """Instance-Batch Normalisation: InstanceNorm (affine) on the first half of the channels, BatchNorm on the rest.

    Submodule names ``IN`` and ``BN`` follow IBN-Net's released checkpoints so they load as they are.
    """

    def __init__(self, channels: int, ratio: float = 0.5) -> None:
        super().__init__()
        self.half = int(channels * ratio)
        self.IN = nn.InstanceNorm2d(self.half, affine=True)
        self.BN = nn.BatchNorm2d(channels - self.half)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise the two channel groups separately and concatenate them back."""
        first, rest = torch.split(x, [self.half, x.shape[1] - self.half], dim=1)
        return torch.cat([self.IN(first.contiguous()), self.BN(rest.contiguous())], dim=1)


def _to_ibn_a(net: ResNet) -> ResNet:
    """Replace the first BN of every bottleneck of layer1-3 by an IBN (layer4 and the stem stay plain)."""
    for layer in (net.layer1, net.layer2, net.layer3):
        for block in layer:
            block.bn1 = IBN(block.bn1.num_features)
    return net


def resnet50_ibn_a() -> ResNet:
    """ResNet-50-IBN-a with random weights (same parameter count as ResNet-50)."""
    return _to_ibn_a(resnet50(weights=None))


def resnet101_ibn_a() -> ResNet:
    """ResNet-101-IBN-a with random weights (same parameter count as ResNet-101)."""
    return _to_ibn_a(resnet101(weights=None))
