"""PatchGAN discriminator (Isola et al., CVPR 2017) as used by CycleGAN, with four stride-2 layers."""

import torch
from torch import nn


class PatchDiscriminator(nn.Module):
    """Four 4x4 stride-2 convs (no norm on the first, InstanceNorm after), LeakyReLU 0.2, 4x4 conv to one channel.

    Takes RGB images in [0, 1] (mapped to [-1, 1] inside) of at least 32 x 32 pixels and returns a map of
    real/fake scores (raw, for the LSGAN objective), about H/16 x W/16.
    """

    def __init__(self, in_channels: int = 3, base_channels: int = 64) -> None:
        super().__init__()
        widths = [base_channels, base_channels * 2, base_channels * 4, base_channels * 8]
        layers = []
        previous = in_channels
        for index, width in enumerate(widths):
            layers.append(nn.Conv2d(previous, width, 4, stride=2, padding=1))
            if index > 0:
                layers.append(nn.InstanceNorm2d(width, affine=False))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            previous = width
        layers.append(nn.Conv2d(previous, 1, 4, stride=1, padding=1))
        self.net = nn.Sequential(*layers)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, 0.0, 0.02)
                nn.init.zeros_(module.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Patch scores B x 1 x h x w for images B x C x H x W in [0, 1]."""
        return self.net(images * 2.0 - 1.0)


class DomainDiscriminators(nn.Module):
    """The two discriminators by image domain: ``clear`` judges clear images, ``hazy`` hazy ones."""

    def __init__(self, base_channels: int = 64) -> None:
        super().__init__()
        self.clear = PatchDiscriminator(3, base_channels)
        self.hazy = PatchDiscriminator(3, base_channels)

    def __getitem__(self, domain: str) -> PatchDiscriminator:
        """The discriminator of ``domain`` ("clear" or "hazy")."""
        return getattr(self, domain)
