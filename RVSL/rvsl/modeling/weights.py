"""Loading weights: ImageNet backbones from a local file, and shape-matched states between stages."""

import logging
from typing import Any, Dict, List, Mapping, Tuple

import torch
from torch import nn

from ..utils.errors import InputError

logger = logging.getLogger(__name__)

_ENCODER_PARTS = ("conv1", "bn1", "layer1")
_REID_PARTS = ("layer2", "layer3", "layer4")
_SHOWN = 5  # skipped keys named in the log; the caller gets all of them


def load_matching_state(module: nn.Module, state: Mapping[str, torch.Tensor]) -> Tuple[List[str], List[str]]:
    """Copy the tensors of ``state`` whose name and shape match ``module``; return (loaded keys, skipped with
    reason)."""
    own = module.state_dict()
    matched: Dict[str, torch.Tensor] = {}
    skipped: List[str] = []
    for key, value in state.items():
        if key not in own:
            skipped.append(f"{key}: not in the model")
        elif not isinstance(value, torch.Tensor):
            skipped.append(f"{key}: not a tensor ({type(value).__name__})")
        elif value.shape != own[key].shape:
            skipped.append(f"{key}: shape {tuple(value.shape)} vs {tuple(own[key].shape)}")
        else:
            matched[key] = value
    module.load_state_dict(matched, strict=False)
    kept = len(own) - len(matched)
    logger.info("loaded %d tensors, skipped %d, %d model tensors keep their values", len(matched), len(skipped), kept)
    if skipped:
        more = f" and {len(skipped) - _SHOWN} more" if len(skipped) > _SHOWN else ""
        logger.info("skipped: %s%s", "; ".join(skipped[:_SHOWN]), more)
    return list(matched), skipped


def strip_module(state: Mapping[str, Any]) -> Dict[str, Any]:
    """``state`` without the ``module.`` prefix that ``nn.DataParallel`` adds to every key."""
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}


def backbone_state(payload: Any, source: str) -> Dict[str, torch.Tensor]:
    """The tensors of a loaded state dict, unwrapped from {"state_dict": ...} and stripped of "module."."""
    state = payload
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not any(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"MODEL.PRETRAIN_PATH: '{source}' does not hold a state dict of tensors")
    return {key: value for key, value in strip_module(state).items() if isinstance(value, torch.Tensor)}


def load_backbone_weights(model: nn.Module, payload: Any, source: str) -> None:
    """Load an ImageNet ResNet state dict (torchvision or IBN-Net layout) into both encoders and D_ReID's layer2-4.

    ``payload`` is the loaded file (see :func:`rvsl.utils.io.safe_load`), ``source`` its path for messages.
    """
    state = backbone_state(payload, source)
    mapped: Dict[str, torch.Tensor] = {}
    for key, value in state.items():
        part = key.split(".", 1)[0]
        if part in _ENCODER_PARTS:
            mapped[f"enc_clear.{key}"] = value
            mapped[f"enc_hazy.{key}"] = value
        elif part in _REID_PARTS:
            mapped[f"reid.{key}"] = value
    loaded, skipped = load_matching_state(model, mapped)
    if not loaded:
        raise InputError(f"MODEL.PRETRAIN_PATH: no tensor of '{source}' matches the backbone "
                         f"{getattr(model, 'backbone_name', '')}")
    logger.info("ImageNet weights from %s: %d tensors loaded, %d skipped", source, len(loaded), len(skipped))
