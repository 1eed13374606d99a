"""Image loading and the (joint) train-time augmentation; tensors are RGB in [0, 1]."""

import random
from typing import List, Sequence, Tuple

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..utils.errors import InputError

cv2.setNumThreads(1)  # loaders parallelise over images; OpenCV's own threads would oversubscribe


def read_image(path: str, size: Tuple[int, int]) -> torch.Tensor:
    """Decode ``path`` and resize to ``size`` (height, width): a 3 x H x W float tensor in [0, 1]."""
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise InputError(f"image does not decode: {path}")
    height, width = size
    if image.shape[:2] != (height, width):
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
    image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)


def joint_augment(images: Sequence[torch.Tensor], flip_prob: float, padding: int) -> List[torch.Tensor]:
    """Apply one random horizontal flip and one padded random crop identically to every image.

    Identical geometry keeps a synthetic clear image aligned with its hazy twin, which the
    translation losses compare pixel by pixel. Uses python's ``random`` (seeded per worker).
    """
    flip = random.random() < flip_prob
    height, width = images[0].shape[-2:]
    top = random.randint(0, 2 * padding) if padding else 0
    left = random.randint(0, 2 * padding) if padding else 0
    out = []
    for image in images:
        if flip:
            image = image.flip(-1)
        if padding:
            image = F.pad(image, (padding, padding, padding, padding))[:, top:top + height, left:left + width]
        out.append(image.contiguous())
    return out
