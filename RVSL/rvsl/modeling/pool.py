"""Replay buffer of generated images for the discriminator step (Shrivastava et al. 2017; CycleGAN)."""

import logging
from typing import Any, Dict, List

import torch

from ..utils.errors import InputError

logger = logging.getLogger(__name__)


class ImagePool:
    """Keeps up to ``size`` past generated images; ``query`` mixes them into the batch the discriminator sees.

    Randomness comes from torch's global generator, so ``torch.manual_seed`` reproduces it. ``size`` 0
    disables the pool (``query`` returns its input, detached).
    """

    def __init__(self, size: int = 50) -> None:
        if size < 0:
            raise InputError(f"MODEL.POOL_SIZE must be >= 0, got {size}")
        self.size = int(size)
        self.images: List[torch.Tensor] = []

    def __len__(self) -> int:
        return len(self.images)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        """Per image: store it while the pool fills; then with prob. 0.5 swap it for a stored one, else pass it."""
        images = images.detach()
        if self.size == 0:
            return images
        out = []
        for image in images:
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand(()).item() < 0.5:
                index = int(torch.randint(self.size, ()).item())
                out.append(self.images[index].to(image.device, image.dtype))
                self.images[index] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)

    def state_dict(self) -> Dict[str, Any]:
        """The pool's size and stored images (tensors on CPU), loadable with ``torch.load(weights_only=True)``."""
        return {"size": self.size, "images": [image.detach().cpu() for image in self.images]}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore stored images from ``state_dict()``; keeps at most ``size`` of them."""
        if not isinstance(state, dict) or "images" not in state:
            raise InputError("image pool state: expected a dict with an 'images' list")
        images = list(state["images"])
        if len(images) > self.size:
            logger.warning("image pool: the saved pool holds %d images, keeping the first %d", len(images), self.size)
        self.images = [image.clone() for image in images[: self.size]]
