"""Image loading and the (joint) train-time augmentation; tensors are RGB in [0, 1]."""

import math
import os
import random
from typing import List, NamedTuple, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..utils.errors import InputError


def init_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: loader workers parallelise over images, so OpenCV's own threads in
    each worker would only oversubscribe the CPU (set in the worker process, never in the main one).

    Each worker gets its own process group, so that Ctrl-C in a terminal or a SIGTERM sent to the run's process
    group reaches the main process alone: it stops the run at an iteration boundary and ends its workers itself
    (a worker that ignored SIGTERM instead would block the main process's exit, which ends workers with it)."""
    cv2.setNumThreads(1)
    if hasattr(os, "setpgrp"):  # POSIX
        os.setpgrp()


def read_image_uint8(path: str, size: Tuple[int, int]) -> torch.Tensor:
    """Decode ``path`` and resize to ``size`` (height, width): a 3 x H x W uint8 RGB tensor."""
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise InputError(f"image does not decode: {path}")
    height, width = size
    if image.shape[:2] != (height, width):
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
    image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)


def read_image(path: str, size: Tuple[int, int]) -> torch.Tensor:
    """Decode ``path`` and resize to ``size`` (height, width): a 3 x H x W float tensor in [0, 1]."""
    return read_image_uint8(path, size).float().div_(255.0)


def to_uint8(image: torch.Tensor) -> torch.Tensor:
    """A [0, 1] float image as uint8 (rounded): how training batches travel to the device."""
    return image.mul(255.0).round_().clamp_(0, 255).to(torch.uint8)


class Augment(NamedTuple):
    """Parameters of the joint train-time augmentation (the ``INPUT.*`` keys); the defaults do nothing."""

    flip_prob: float = 0.0
    resize_range: Tuple[float, float] = (1.0, 1.0)
    padding: int = 0
    erase_prob: float = 0.0
    erase_area: Tuple[float, float] = (0.02, 0.4)
    erase_aspect: float = 0.3
    erase_fill: Tuple[float, float, float] = (0.4914, 0.4822, 0.4465)
    jitter_prob: float = 0.0
    jitter: Tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    blur_prob: float = 0.0
    blur_sigma: Tuple[float, float] = (0.0, 0.0)
    noise_std: float = 0.0


def gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """A C x H x W image blurred by a separable Gaussian of ``sigma`` pixels (reflected borders)."""
    radius = max(1, min(int(math.ceil(3 * sigma)), min(image.shape[-2:]) - 1))
    x = torch.arange(-radius, radius + 1, dtype=image.dtype)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    kernel = (kernel / kernel.sum()).repeat(image.shape[0], 1, 1)
    out = F.pad(image[None], (radius, radius, radius, radius), mode="reflect")
    out = F.conv2d(out, kernel[:, :, None, :], groups=image.shape[0])
    return F.conv2d(out, kernel[:, :, :, None], groups=image.shape[0])[0]


def photometric(image: torch.Tensor, gains: Optional[Tuple[float, float, float, torch.Tensor]],
                sigma: float, noise: Optional[torch.Tensor]) -> torch.Tensor:
    """Colour jitter (brightness, contrast, saturation, per-channel cast), Gaussian blur, additive noise; clamped."""
    if gains is not None:
        brightness, contrast, saturation, cast = gains
        image = image * brightness * cast.view(-1, 1, 1)
        image = (image - image.mean()) * contrast + image.mean()
        gray = image.mean(dim=0, keepdim=True)
        image = gray + (image - gray) * saturation
    if sigma > 0:
        image = gaussian_blur(image, sigma)
    if noise is not None:
        image = image + noise
    return image.clamp(0.0, 1.0)


def draw_erase_box(height: int, width: int, area: Tuple[float, float], aspect: float, attempts: int = 100,
                   rng: Optional[random.Random] = None) -> Optional[Tuple[int, int, int, int]]:
    """``(top, left, h, w)`` of a random-erasing rectangle (Zhong et al., AAAI 2020), or None.

    Area ``U(*area)`` of the image, aspect ratio ``h / w`` ~ ``U(aspect, 1 / aspect)``; a draw that
    does not fit inside the image is redrawn, up to ``attempts`` times. Draws from ``rng`` (default: python's
    global generator).
    """
    rng = rng or random
    for _ in range(attempts):
        target = rng.uniform(*area) * height * width
        ratio = rng.uniform(aspect, 1.0 / aspect)
        h = int(round(math.sqrt(target * ratio)))
        w = int(round(math.sqrt(target / ratio)))
        if 0 < h < height and 0 < w < width:
            return rng.randint(0, height - h), rng.randint(0, width - w), h, w
    return None


def joint_augment(images: Sequence[torch.Tensor], augment: Augment,
                  rng: Optional[random.Random] = None) -> List[torch.Tensor]:
    """Apply one random draw of flip, resize + centre crop, padded crop, photometric changes and erasing to
    every image.

    In order: horizontal flip with ``flip_prob``; resize each axis by its own ``U(*resize_range)``
    then crop the centre back to the input size; if ``padding``, a random crop of the zero-padded
    image; with ``jitter_prob`` brightness, contrast, saturation and a per-channel cast, each a factor
    ``U(1 - s, 1 + s)`` of its strength ``s`` in ``jitter``; with ``blur_prob`` a Gaussian blur of
    ``U(*blur_sigma)`` times the image height; Gaussian noise of standard deviation ``U(0, noise_std)``;
    random erasing with ``erase_prob`` (the rectangle filled with ``erase_fill``).
    Identical geometry keeps a synthetic clear image aligned with its hazy twin, which the
    translation losses compare pixel by pixel. Draws from ``rng`` (python's global generator by default).
    """
    rng = rng or random
    height, width = images[0].shape[-2:]
    flip = rng.random() < augment.flip_prob
    scaled = (int(round(height * rng.uniform(*augment.resize_range))),
              int(round(width * rng.uniform(*augment.resize_range))))
    pad = augment.padding
    top, left = (rng.randint(0, 2 * pad), rng.randint(0, 2 * pad)) if pad else (0, 0)
    gains = sigma = noise = None
    # each draw only when its change is on: with them off, the random stream is the one before they existed
    if augment.jitter_prob > 0 and rng.random() < augment.jitter_prob:
        b, c, sat, cast = augment.jitter
        gains = (rng.uniform(1 - b, 1 + b), rng.uniform(1 - c, 1 + c), rng.uniform(1 - sat, 1 + sat),
                 torch.tensor([rng.uniform(1 - cast, 1 + cast) for _ in range(3)]))
    blurred = augment.blur_prob > 0 and rng.random() < augment.blur_prob
    sigma = rng.uniform(*augment.blur_sigma) * height if blurred else 0.0
    if augment.noise_std > 0:
        generator = torch.Generator().manual_seed(rng.randrange(2 ** 31))
        noise = torch.randn(images[0].shape, generator=generator) * rng.uniform(0, augment.noise_std)
    box = None
    if rng.random() < augment.erase_prob:
        box = draw_erase_box(height, width, augment.erase_area, augment.erase_aspect, rng=rng)
    out = []
    for image in images:
        if flip:
            image = image.flip(-1)
        if scaled != (height, width):
            image = F.interpolate(image[None], size=scaled, mode="bilinear", align_corners=False)[0]
            y, x = (scaled[0] - height) // 2, (scaled[1] - width) // 2
            image = image[:, y:y + height, x:x + width]
        if pad:
            image = F.pad(image, (pad, pad, pad, pad))[:, top:top + height, left:left + width]
        if gains is not None or sigma > 0 or noise is not None:
            image = photometric(image, gains, sigma, noise)
        if box is not None:
            y, x, h, w = box
            image = image.clone()  # never write into the caller's tensor
            image[:, y:y + h, x:x + w] = torch.tensor(augment.erase_fill, dtype=image.dtype).view(-1, 1, 1)
        out.append(image.contiguous())
    return out
