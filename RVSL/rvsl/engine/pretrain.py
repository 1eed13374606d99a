"""What a training run starts from (``MODEL.PRETRAIN_PATH``), and the check that a saved model is the configured one."""

import logging

from torch import nn

from ..checkpoint import IMAGENET_FORMAT, REFERENCE_FORMAT, load_reference_weights, read_weights
from ..config import CfgNode
from ..modeling import load_backbone_weights, load_matching_state
from ..utils.errors import InputError

logger = logging.getLogger(__name__)


def check_same_model(cfg: CfgNode, saved_cfg: CfgNode, path: str) -> None:
    """:class:`InputError` unless the checkpoint ``path``'s config ``saved_cfg`` has ``cfg``'s backbone and stride."""
    saved = saved_cfg.MODEL
    if saved.NAME != cfg.MODEL.NAME or saved.LAST_STRIDE != cfg.MODEL.LAST_STRIDE:
        raise InputError(f"{path} holds a {saved.NAME} model (last stride {saved.LAST_STRIDE}); "
                         f"expected {cfg.MODEL.NAME} (last stride {cfg.MODEL.LAST_STRIDE})")


def load_pretrained(model: nn.Module, discriminators: nn.Module, cfg: CfgNode, path: str) -> None:
    """Start ``model`` (and ``discriminators``) from ``path``: a previous stage's checkpoint (matching tensors only),
    a reference-format state dict (every key mapped) or an ImageNet state dict (the backbone's tensors)."""
    weights = read_weights(path, "MODEL.PRETRAIN_PATH")
    if weights.format == REFERENCE_FORMAT:
        load_reference_weights(model, weights.state, f"MODEL.PRETRAIN_PATH: {path}")
        return
    if weights.format == IMAGENET_FORMAT:
        load_backbone_weights(model, weights.state, path)
        return
    check_same_model(cfg, weights.config, path)
    logger.info("starting from %s (a %s checkpoint, epoch %d)", path, weights.meta["stage"], weights.meta["epoch"])
    loaded, _ = load_matching_state(model, weights.state)  # logs what it skipped
    if not loaded:
        raise InputError(f"MODEL.PRETRAIN_PATH {path}: no tensor matches the model")
    if "discriminators" in weights.meta:
        load_matching_state(discriminators, weights.meta["discriminators"])
