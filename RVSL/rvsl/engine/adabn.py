"""AdaBN (Li et al., "Revisiting Batch Normalization For Practical Domain Adaptation", 2016): the crude
label-free baseline of adaptation. The BatchNorm statistics of one branch (its encoder, the shared
D_ReID and the BNNeck) are recomputed on unlabelled target images; no label, no gradient, no weight
changes otherwise. As D_ReID is shared, the other branch sees the new statistics too."""

import logging
from typing import Iterable, List, Mapping

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

logger = logging.getLogger(__name__)


def branch_batchnorms(model: nn.Module, branch: str) -> List[_BatchNorm]:
    """The BatchNorm layers a ``branch`` ("clear" or "hazy") image goes through to its BN feature."""
    encoder = model.enc_clear if branch == "clear" else model.enc_hazy
    return [m for part in (encoder, model.reid) for m in part.modules() if isinstance(m, _BatchNorm)]


@torch.no_grad()
def adapt_batchnorm(model: nn.Module, loader: Iterable[Mapping], branch: str, device: torch.device) -> int:
    """Replace the ``branch``'s BatchNorm running statistics by their average over ``loader``'s images.

    Batches are dicts with "img" (RGB in [0, 1]). Each statistic becomes the plain average of the
    batches' statistics (momentum None), so the result does not depend on the batch order; with equal
    batches the mean is the mean over all images. Returns the image count.
    """
    norms = branch_batchnorms(model, branch)
    momenta = [bn.momentum for bn in norms]
    model.eval()
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None
        bn.train()
    seen = 0
    try:
        for batch in loader:
            images = batch["img"].to(device, non_blocking=True)
            model(images, branch)
            seen += images.shape[0]
    finally:
        for bn, momentum in zip(norms, momenta):
            bn.momentum = momentum
        model.eval()
    if seen == 0:
        raise ValueError("AdaBN needs at least one image")
    logger.info("AdaBN: %d BatchNorm layers of the %s branch re-estimated on %d images", len(norms), branch, seen)
    return seen
