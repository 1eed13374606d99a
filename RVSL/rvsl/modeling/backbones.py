"""ResNet backbones by name (torchvision and IBN-a), built with random weights; nothing downloads."""

from typing import Callable, Dict

from torch import nn
from torchvision.models import ResNet, resnet18, resnet34, resnet50, resnet101, resnet152
from torchvision.models.resnet import BasicBlock, Bottleneck

from ..utils.errors import InputError
from .resnet_ibn_a import resnet50_ibn_a, resnet101_ibn_a

_FACTORIES: Dict[str, Callable[[], ResNet]] = {
    "resnet18": lambda: resnet18(weights=None),
    "resnet34": lambda: resnet34(weights=None),
    "resnet50": lambda: resnet50(weights=None),
    "resnet101": lambda: resnet101(weights=None),
    "resnet152": lambda: resnet152(weights=None),
    "resnet50_ibn_a": resnet50_ibn_a,
    "resnet101_ibn_a": resnet101_ibn_a,
}

BACKBONE_NAMES = tuple(_FACTORIES)


def _set_last_stride(net: ResNet, last_stride: int) -> None:
    """Set the stride of layer4's first block (its strided conv and its downsample shortcut)."""
    block = net.layer4[0]
    conv = block.conv2 if isinstance(block, Bottleneck) else block.conv1
    conv.stride = (last_stride, last_stride)
    if block.downsample is not None:
        block.downsample[0].stride = (last_stride, last_stride)


def build_resnet(name: str, last_stride: int = 2) -> ResNet:
    """A randomly initialised ResNet called ``name`` whose layer4 has stride ``last_stride`` (1 or 2)."""
    if name not in _FACTORIES:
        raise InputError(f"MODEL.NAME: unknown backbone '{name}' (choose one of {', '.join(BACKBONE_NAMES)})")
    if last_stride not in (1, 2):
        raise InputError(f"MODEL.LAST_STRIDE must be 1 or 2, got {last_stride!r}")
    net = _FACTORIES[name]()
    _set_last_stride(net, last_stride)
    return net


def stage_channels(layer: nn.Sequential) -> int:
    """Output channels of a ResNet stage (its last block's last conv)."""
    block = layer[-1]
    if isinstance(block, BasicBlock):
        return block.conv2.out_channels
    return block.conv3.out_channels
