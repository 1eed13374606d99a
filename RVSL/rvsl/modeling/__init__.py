"""Networks: the RVSL model (encoders, ReID body, generators), the PatchGAN discriminator, the image pool."""

from .backbones import BACKBONE_NAMES, build_resnet
from .discriminator import DomainDiscriminators, PatchDiscriminator
from .generator import DoubleConv, Generator
from .pool import ImagePool
from .resnet_ibn_a import IBN, resnet50_ibn_a, resnet101_ibn_a
from .rvsl_model import (DOMAINS, OTHER, RVSL, Encoder, ReIDHead, ReIDOutput, build_discriminators, build_model,
                         compile_networks)
from .weights import backbone_state, load_backbone_weights, load_matching_state

__all__ = [
    "DOMAINS",
    "OTHER",
    "BACKBONE_NAMES",
    "DomainDiscriminators",
    "DoubleConv",
    "Encoder",
    "Generator",
    "IBN",
    "ImagePool",
    "PatchDiscriminator",
    "RVSL",
    "ReIDHead",
    "ReIDOutput",
    "backbone_state",
    "build_discriminators",
    "build_model",
    "build_resnet",
    "compile_networks",
    "load_backbone_weights",
    "load_matching_state",
    "resnet101_ibn_a",
    "resnet50_ibn_a",
]
