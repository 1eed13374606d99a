"""AdaBN (Li et al., "Revisiting Batch Normalization For Practical Domain Adaptation", 2016): the crude
label-free baseline of adaptation. The BatchNorm statistics of one branch (its encoder, the shared
D_ReID and the BNNeck) are recomputed on unlabelled target images; no label, no gradient, no weight
changes otherwise. As D_ReID is shared, the other branch sees the new statistics too."""

import argparse
import logging
from pathlib import Path
from typing import Dict, Iterable, List, Mapping

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..checkpoint import load_inference_model, size_override, test_size, write_checkpoint
from ..config import CfgNode
from ..data.build import folder, make_loader
from ..data.datasets import ImageListDataset
from ..data.fvrid import list_images
from .defaults import default_setup

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


def run_adabn(cfg: CfgNode, args: argparse.Namespace) -> Dict:
    """``TEST.WEIGHT`` with the hazy branch's BatchNorm statistics re-estimated on the unlabelled real hazy
    training images (``DATASETS.REAL_TRAIN_FOGGY_PATH``, read at ``INPUT.SIZE_TEST``), saved as
    ``OUTPUT_DIR/adabn.pth``: an RVSL checkpoint that ``inference.py`` and the other commands accept."""
    device = default_setup(cfg)
    model, model_cfg, info = load_inference_model(cfg.TEST.WEIGHT, "TEST.WEIGHT", cfg)
    key = "REAL_TRAIN_FOGGY_PATH"
    paths = list_images(folder(cfg, key), f"DATASETS.{key}")
    # equal batches, so that every image weighs the same in the averaged statistics (and no batch of one)
    batch = min(cfg.TEST.IMS_PER_BATCH, len(paths))
    size = test_size(model_cfg, size_override(cfg, args.opts))
    loader = make_loader(cfg, ImageListDataset(paths, size), batch_size=batch,
                         drop_last=True)
    seen = adapt_batchnorm(model.to(device), loader, "hazy", device)
    path = Path(cfg.OUTPUT_DIR) / "adabn.pth"
    adabn = {"weight": cfg.TEST.WEIGHT, "branch": "hazy", "images": seen, "folder": folder(cfg, key)}
    write_checkpoint(path, model.cpu().state_dict(), stage=info["stage"], epoch=info["epoch"], config=model_cfg,
                     num_classes=info["num_classes"], adabn=adabn)
    logger.info("AdaBN checkpoint written to %s", path)
    return adabn
