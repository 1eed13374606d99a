"""The RVSL network: two encoders, a shared ReID body with BNNeck, and two U-Net generators."""

import copy
import logging
from typing import NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import ResNet

from ..utils.errors import InputError
from .backbones import build_resnet, stage_channels
from .discriminator import DomainDiscriminators
from .generator import Generator, run_block

logger = logging.getLogger(__name__)

DOMAINS = ("clear", "hazy")
# The other image domain: where a translator takes an image of a domain.
OTHER = {"clear": "hazy", "hazy": "clear"}
GENERATOR_BLOCKS = ("block1", "block2", "block3")


class ReIDOutput(NamedTuple):
    """What D_ReID gives: pooled global feature, BNNeck feature and identity logits."""

    global_feat: torch.Tensor
    bn_feat: torch.Tensor
    logits: torch.Tensor


class Encoder(nn.Module):
    """E_C or E_H: ResNet stem (conv1, bn1, relu) giving the skip F1, then max-pool and layer1 giving R1."""

    def __init__(self, net: ResNet) -> None:
        super().__init__()
        self.conv1 = net.conv1
        self.bn1 = net.bn1
        self.relu = net.relu
        self.maxpool = net.maxpool
        self.layer1 = net.layer1
        self.checkpoint = False  # recompute layer1 in the backward pass (MODEL.ACTIVATION_CHECKPOINT)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(F1: 64 ch at H/2, R1: layer1 channels at H/4) for normalised images."""
        f1 = self.relu(self.bn1(self.conv1(x)))
        r1 = run_block(self.layer1, self.maxpool(f1), self.checkpoint)
        return f1, r1


class ReIDHead(nn.Module):
    """D_ReID: layer2-4, global average pooling, BNNeck (bias frozen) and a bias-free linear classifier."""

    def __init__(self, net: ResNet, num_classes: int) -> None:
        super().__init__()
        self.layer2 = net.layer2
        self.layer3 = net.layer3
        self.layer4 = net.layer4
        self.feat_dim = stage_channels(net.layer4)
        self.bnneck = nn.BatchNorm1d(self.feat_dim)
        nn.init.ones_(self.bnneck.weight)
        nn.init.zeros_(self.bnneck.bias)
        self.bnneck.bias.requires_grad_(False)
        self.classifier = nn.Linear(self.feat_dim, num_classes, bias=False)
        nn.init.normal_(self.classifier.weight, std=0.001)
        self.checkpoint = False  # recompute layer2-4 in the backward pass (MODEL.ACTIVATION_CHECKPOINT)

    def forward(self, r1: torch.Tensor) -> ReIDOutput:
        """Global feature, BN feature and logits for encoder features R1.

        Pooling and the BNNeck run in float32 even under autocast, so features never carry bf16 rounding.
        """
        x = r1
        for layer in (self.layer2, self.layer3, self.layer4):
            x = run_block(layer, x, self.checkpoint)
        with torch.autocast(x.device.type, enabled=False):
            global_feat = F.adaptive_avg_pool2d(x.float(), 1).flatten(1)
            bn_feat = self.bnneck(global_feat)
        return ReIDOutput(global_feat, bn_feat, self.classifier(bn_feat))


def _check_stats(name: str, values: Sequence[float]) -> torch.Tensor:
    """A 1 x 3 x 1 x 1 tensor of per-channel statistics, checked to have three entries."""
    if len(values) != 3:
        raise InputError(f"{name} must have 3 values (R, G, B), got {list(values)}")
    return torch.tensor([float(v) for v in values]).view(1, 3, 1, 1)


class RVSL(nn.Module):
    """Encoders E_C/E_H, shared D_ReID and generators G_H (clear to hazy) and G_C (hazy to clear).

    Images in and out are RGB in [0, 1], B x 3 x H x W; ``encode`` normalises with pixel_mean/std.
    """

    def __init__(
        self,
        name: str,
        num_classes: int,
        last_stride: int = 2,
        pixel_mean: Sequence[float] = (0.485, 0.456, 0.406),
        pixel_std: Sequence[float] = (0.229, 0.224, 0.225),
        gen_channels: int = 64,
        generator: str = "rvsl",
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise InputError(f"num_classes must be >= 1, got {num_classes}")
        if gen_channels < 1:
            raise InputError(f"MODEL.GEN_CHANNELS must be >= 1, got {gen_channels}")
        std = _check_stats("INPUT.PIXEL_STD", pixel_std)
        if (std <= 0).any():
            raise InputError(f"INPUT.PIXEL_STD must be positive, got {list(pixel_std)}")
        self.register_buffer("pixel_mean", _check_stats("INPUT.PIXEL_MEAN", pixel_mean), persistent=False)
        self.register_buffer("pixel_std", std, persistent=False)

        net = build_resnet(name, last_stride)
        self.backbone_name = name
        self.enc_clear = Encoder(net)
        self.enc_hazy = copy.deepcopy(self.enc_clear)
        self.reid = ReIDHead(net, num_classes)
        self.r1_channels = stage_channels(net.layer1)
        f1_channels = net.conv1.out_channels
        self.gen_hazy = Generator(self.r1_channels, f1_channels, gen_channels, generator)
        self.gen_clear = Generator(self.r1_channels, f1_channels, gen_channels, generator)

    def set_activation_checkpoint(self, parts: str) -> None:
        """Recompute activations in the backward pass instead of storing them: of the generators' full-resolution
        block (``parts`` "fullres"), of all generator blocks ("generators"), also of the ResNet stages ("all"),
        or of none ("none"; also "auto", which the trainer resolves for its device)."""
        blocks = {"fullres": ("block3",), "generators": GENERATOR_BLOCKS, "all": GENERATOR_BLOCKS}.get(parts, ())
        for module in (self.gen_hazy, self.gen_clear):
            module.recompute = blocks
        for module in (self.enc_clear, self.enc_hazy, self.reid):
            module.checkpoint = parts == "all"

    @property
    def feat_dim(self) -> int:
        """Width of the global and BN features (2048 for bottleneck ResNets, 512 for resnet18/34)."""
        return self.reid.feat_dim

    def encode(self, images: torch.Tensor, domain: str) -> Tuple[torch.Tensor, torch.Tensor]:
        """(F1, R1) of images in [0, 1] through E_C (``domain="clear"``) or E_H (``"hazy"``)."""
        if domain not in DOMAINS:
            raise InputError(f"domain must be 'clear' or 'hazy', got {domain!r}")
        if images.dim() != 4 or images.shape[1] != 3:
            raise InputError(f"images must be B x 3 x H x W, got shape {tuple(images.shape)}")
        x = (images - self.pixel_mean.to(images.dtype)) / self.pixel_std.to(images.dtype)
        encoder = self.enc_clear if domain == "clear" else self.enc_hazy
        return encoder(x)

    def embed(self, r1: torch.Tensor) -> ReIDOutput:
        """D_ReID on encoder features R1: global feature, BN feature, logits."""
        return self.reid(r1)

    def render_hazy(
        self, f1: torch.Tensor, r1: torch.Tensor, out_size: Optional[Tuple[int, int]] = None
    ) -> torch.Tensor:
        """G_H: a hazy image in [0, 1] from E_C's (F1, R1); ``out_size`` defaults to twice F1's size."""
        return self.gen_hazy(f1, r1, out_size)

    def render_clear(
        self, f1: torch.Tensor, r1: torch.Tensor, out_size: Optional[Tuple[int, int]] = None
    ) -> torch.Tensor:
        """G_C: a clear image in [0, 1] from E_H's (F1, R1); ``out_size`` defaults to twice F1's size."""
        return self.gen_clear(f1, r1, out_size)

    def translate(self, images: torch.Tensor, domain: str,
                  out_size: Optional[Tuple[int, int]] = None) -> torch.Tensor:
        """``images`` of ``domain`` rendered in the other one: "hazy" -> G_C(E_H(x)) (dehazed), "clear" ->
        G_H(E_C(x)) (hazed); ``out_size`` defaults to twice F1's size."""
        f1, r1 = self.encode(images, domain)
        render = self.render_clear if domain == "hazy" else self.render_hazy
        return render(f1, r1, out_size)

    def cycle(self, images: torch.Tensor, domain: str,
              out_size: Optional[Tuple[int, int]] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """(translated, cycled): ``images`` of ``domain`` translated to the other domain, then back."""
        translated = self.translate(images, domain, out_size)
        return translated, self.translate(translated, OTHER[domain], out_size)

    @staticmethod
    def fused_feature(clear: torch.Tensor, hazy: torch.Tensor) -> torch.Tensor:
        """The fused test-time feature: the mean of the L2-normalised clear-branch and hazy-branch features."""
        return (F.normalize(clear, dim=1) + F.normalize(hazy, dim=1)) / 2

    def forward(self, images: torch.Tensor, branch: str = "hazy") -> torch.Tensor:
        """The test-time feature: float32 BN feature (B x feat_dim) of images in [0, 1] through one branch.

        ``branch`` "clear" reads the images with E_C, "hazy" with E_H; both continue through D_ReID.
        """
        _, r1 = self.encode(images, branch)
        return self.embed(r1).bn_feat


def build_model(cfg, num_classes: int) -> RVSL:
    """An RVSL network from cfg.MODEL (NAME, LAST_STRIDE, GEN_CHANNELS, GENERATOR) and cfg.INPUT (PIXEL_MEAN/STD)."""
    model = RVSL(
        cfg.MODEL.NAME,
        num_classes,
        last_stride=cfg.MODEL.LAST_STRIDE,
        pixel_mean=tuple(cfg.INPUT.PIXEL_MEAN),
        pixel_std=tuple(cfg.INPUT.PIXEL_STD),
        gen_channels=cfg.MODEL.GEN_CHANNELS,
        generator=cfg.MODEL.GENERATOR,
    )
    model.set_activation_checkpoint(cfg.MODEL.ACTIVATION_CHECKPOINT)
    logger.info(
        "built RVSL with %s (last stride %d, %d classes, %.1fM parameters)",
        cfg.MODEL.NAME, cfg.MODEL.LAST_STRIDE, num_classes, sum(p.numel() for p in model.parameters()) / 1e6,
    )
    return model


def build_discriminators(cfg) -> DomainDiscriminators:
    """The clear and hazy PatchGAN discriminators, cfg.MODEL.DISC_CHANNELS channels in their first layer."""
    if cfg.MODEL.DISC_CHANNELS < 1:
        raise InputError(f"MODEL.DISC_CHANNELS must be >= 1, got {cfg.MODEL.DISC_CHANNELS}")
    return DomainDiscriminators(cfg.MODEL.DISC_CHANNELS)


def compile_networks(model: RVSL, discriminators: DomainDiscriminators) -> None:
    """``torch.compile`` the forward passes of the encoders, ReID body, generators and discriminators in place
    (state-dict keys are unchanged, so checkpoints stay interchangeable)."""
    for module in (model.enc_clear, model.enc_hazy, model.reid, model.gen_hazy, model.gen_clear,
                   discriminators.clear, discriminators.hazy):
        module.compile()
