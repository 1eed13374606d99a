"""``MODEL.ACTIVATION_CHECKPOINT auto``: the fastest activation-checkpointing policy that fits the GPU's free memory."""

import logging
from typing import Dict, Optional, Tuple

import torch

from ..config import CfgNode

logger = logging.getLogger(__name__)

# The policies, fastest (least recomputation) first (see MODEL.ACTIVATION_CHECKPOINT in config/defaults.py).
POLICIES = ("none", "fullres", "generators", "all")
# Peak GPU memory in GB per stage and policy at the reference shape below, as measured on an H100 (the README's
# speed table). Stage 2 runs the same unsupervised step as stage 3. A policy missing here is taken at the peak
# of the next faster one it recomputes a subset of, an upper bound ("fullres" recomputes part of "generators").
MEASURED_PEAK_GB: Dict[str, Dict[str, float]] = {
    "STAGE1": {"none": 20.7, "generators": 19.6, "all": 12.0},
    "STAGE3": {"none": 29.2, "generators": 23.6, "all": 13.8},
}
REFERENCE_SHAPE = {"pairs": 36, "real": 18, "pixels": 384 * 384}  # configs/FVRID.yml
# What does not grow with the batch: weights, gradients and Adam moments, convolution workspace.
FIXED_GB = 1.0
# Free memory asked for beyond the estimate: allocator fragmentation and cached blocks.
HEADROOM = 1.15


def images_per_step(cfg: CfgNode, stage: str) -> int:
    """Images of one micro-batch (one loader batch): both twins of P x K pairs, plus the real ones after stage 1."""
    pairs = cfg.DATALOADER.NUM_IDENTITIES * cfg.DATALOADER.NUM_INSTANCES
    return 2 * pairs + (0 if stage == "STAGE1" else cfg.DATALOADER.REAL_BATCH_SIZE)


def estimated_peak_gb(cfg: CfgNode, policy: str) -> float:
    """Estimated peak GPU memory of training ``cfg``'s stage under ``policy``: the measured peak at the
    reference shape, its batch-dependent part scaled by images per micro-batch and by pixels per image."""
    stage = "STAGE1" if cfg.MODE.STAGE == "STAGE1" else "STAGE3"
    measured = MEASURED_PEAK_GB[stage]
    known = POLICIES[:POLICIES.index(policy) + 1]
    peak = measured[next(p for p in reversed(known) if p in measured)]
    reference = 2 * REFERENCE_SHAPE["pairs"] + (0 if stage == "STAGE1" else REFERENCE_SHAPE["real"])
    height, width = cfg.INPUT.SIZE_TRAIN
    scale = images_per_step(cfg, cfg.MODE.STAGE) / reference * (height * width) / REFERENCE_SHAPE["pixels"]
    return FIXED_GB + (peak - FIXED_GB) * scale


def choose_activation_checkpoint(cfg: CfgNode, device: torch.device,
                                 free_total: Optional[Tuple[int, int]] = None) -> str:
    """``MODEL.ACTIVATION_CHECKPOINT``, with ``auto`` resolved: "none" off CUDA; on CUDA the first policy of
    :data:`POLICIES` whose estimated peak (times :data:`HEADROOM`) fits the device's free memory, read once
    (``free_total``: (free, total) bytes, else ``torch.cuda.mem_get_info``), or "all" when none fits."""
    policy = cfg.MODEL.ACTIVATION_CHECKPOINT
    if policy != "auto":
        return policy
    if device.type != "cuda":
        logger.info("MODEL.ACTIVATION_CHECKPOINT auto: none (on %s)", device.type)
        return "none"
    free, total = free_total if free_total is not None else torch.cuda.mem_get_info(device)
    free_gb = free / 1e9
    estimates = {p: estimated_peak_gb(cfg, p) for p in POLICIES}
    chosen = next((p for p in POLICIES if estimates[p] * HEADROOM <= free_gb), "all")
    logger.info("MODEL.ACTIVATION_CHECKPOINT auto: %.1f of %.1f GB free on %s; estimated peaks %s GB; chose %s",
                free_gb, total / 1e9, device, ", ".join(f"{p} {v:.1f}" for p, v in estimates.items()), chosen)
    if estimates[chosen] * HEADROOM > free_gb:
        logger.warning("MODEL.ACTIVATION_CHECKPOINT auto: even 'all' (estimated %.1f GB) may not fit in %.1f GB "
                       "free; lower DATALOADER.NUM_IDENTITIES and raise SOLVER.ACCUM_STEPS", estimates["all"], free_gb)
    return chosen
