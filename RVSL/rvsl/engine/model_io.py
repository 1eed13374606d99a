"""One loader for a trained model: our checkpoints and the reference code's bare state dicts."""

import logging
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch

from ..config import CfgNode, config_from_dict, with_values
from ..modeling import RVSL, build_model
from ..modeling.reference import from_reference, is_reference_state, reference_key
from ..modeling.weights import strip_module
from ..utils.errors import InputError
from ..utils.io import safe_load
from .checkpoint import REQUIRED_KEYS, is_rvsl_checkpoint

logger = logging.getLogger(__name__)

_SHOWN = 8  # names listed in an error about missing or unexpected keys


def load_inference_model(path: str, key: str, cfg: CfgNode) -> Tuple[RVSL, CfgNode, Dict[str, Any]]:
    """(model in eval mode on the CPU, the config it was built from, info) for the weights in ``path``.

    An RVSL checkpoint brings its own config; a reference-format state dict holds none, so the model
    is built from ``cfg`` with as many classes as its classifier has rows and the reference's generators
    (``MODEL.GENERATOR`` reference, whatever ``cfg`` says), and every key must match by name and shape.
    ``key`` names the option or config key that gave ``path`` in error messages.
    """
    payload = safe_load(path, key)
    if is_rvsl_checkpoint(payload):
        model_cfg = config_from_dict(payload["config"], f"{key}: {path}")
        model = build_model(model_cfg, int(payload["num_classes"]))
        _load_exactly(model, payload["model"], f"{key}: {path}", lambda k: k)
        info = {"format": "rvsl", "stage": payload["stage"], "epoch": int(payload["epoch"]),
                "num_classes": int(payload["num_classes"])}
    elif is_reference_state(payload):
        state, classifier = from_reference(payload, f"{key}: {path}")
        num_classes = int(state["reid.classifier.weight"].shape[0])
        model_cfg = with_reference_generators(cfg)
        model = build_model(model_cfg, num_classes)
        load_reference_weights(model, payload, f"{key}: {path}")
        info = {"format": "reference", "stage": "stage1" if classifier == "classifier" else "stage2/3",
                "epoch": -1, "num_classes": num_classes}
    else:
        have = sorted(payload)[:_SHOWN] if isinstance(payload, dict) else type(payload).__name__
        raise InputError(f"{key}: {path} is neither an RVSL checkpoint (keys {', '.join(REQUIRED_KEYS)}) nor a "
                         f"reference RVSL state dict (keys under Ec., Ef., Dreid., bottleneck.); found {have}")
    model.eval()
    logger.info("loaded %s (%s format, %s, %s, %d classes)", path, info["format"], info["stage"],
                model_cfg.MODEL.NAME, info["num_classes"])
    return model, model_cfg, info


def with_reference_generators(cfg: CfgNode) -> CfgNode:
    """``cfg`` itself when its ``MODEL.GENERATOR`` is "reference"; otherwise a frozen copy that says so (logged)."""
    if cfg.MODEL.GENERATOR == "reference":
        return cfg
    logger.info("reference-format weights: MODEL.GENERATOR reference (their generators end without an activation)")
    return with_values(cfg, {"MODEL.GENERATOR": "reference"})


def size_override(cfg: CfgNode, opts: Sequence[str]) -> Optional[Tuple[int, int]]:
    """``cfg``'s ``INPUT.SIZE_TEST`` when the command line's ``KEY VALUE`` pairs ``opts`` set it, else None."""
    return tuple(int(s) for s in cfg.INPUT.SIZE_TEST) if "INPUT.SIZE_TEST" in list(opts)[0::2] else None


def test_size(model_cfg: CfgNode, override: Optional[Sequence[int]] = None) -> Tuple[int, int]:
    """The (height, width) a model's input images are resized to, the one rule of every command that uses a
    model: ``override`` (``INPUT.SIZE_TEST`` given on the command line) when set, else the size in the model's
    config (an RVSL checkpoint's own, at which it was trained and validated; a config file's does not count). Logged."""
    own = tuple(int(s) for s in model_cfg.INPUT.SIZE_TEST)
    if override is None or tuple(override) == own:
        logger.info("input size %dx%d (the model's INPUT.SIZE_TEST)", *own)
        return own
    size = (int(override[0]), int(override[1]))
    logger.info("input size %dx%d (INPUT.SIZE_TEST given; the model's own is %dx%d)", *size, *own)
    return size


def load_reference_weights(model: RVSL, payload: Mapping[str, torch.Tensor], source: str) -> None:
    """Start ``model`` from a reference-format state dict (``MODEL.PRETRAIN_PATH``): every key must map and fit,
    except a classifier with another number of classes, which keeps its own weights (logged).

    The model's generators must be the reference's (``MODEL.GENERATOR`` reference): its weights render
    nonsense through a sigmoid. Pixel normalisation other than none is warned about: the reference's
    networks read RGB in [0, 1] as they are.
    """
    if model.gen_clear.style != "reference":
        raise InputError(f"{source} is a reference-format file, whose generators end without an activation: "
                         "set MODEL.GENERATOR reference (configs/FVRID_reference.yml does)")
    if model.pixel_mean.abs().max() > 0 or (model.pixel_std - 1).abs().max() > 0:
        logger.warning("%s: the reference networks read RGB in [0, 1] without normalisation, but INPUT.PIXEL_MEAN/STD "
                       "are %s / %s (configs/FVRID_reference.yml sets 0 / 1)", source,
                       model.pixel_mean.flatten().tolist(), model.pixel_std.flatten().tolist())
    state, classifier = from_reference(payload, source)
    back = {v: k for k, v in zip(strip_module(payload), state)}  # our name -> the file's name
    own = model.state_dict()["reid.classifier.weight"]
    if tuple(state["reid.classifier.weight"].shape) != tuple(own.shape):
        logger.info("%s: %s has %d classes, the model %d: the classifier starts fresh", source, classifier,
                    state["reid.classifier.weight"].shape[0], own.shape[0])
        state["reid.classifier.weight"] = own
    _load_exactly(model, state, source, lambda k: back.get(k) or reference_key(k, classifier))


def _load_exactly(model: torch.nn.Module, state: Mapping[str, torch.Tensor], source: str, name_of) -> None:
    """Load ``state`` strictly; missing, unexpected or mis-shaped keys raise :class:`InputError` naming them."""
    own = model.state_dict()
    missing = [name_of(k) for k in own if k not in state]
    unexpected = [name_of(k) for k in state if k not in own]
    shapes = [f"{name_of(k)} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in state.items()
              if k in own and tuple(v.shape) != tuple(own[k].shape)]
    problems: List[str] = []
    for label, names in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)):
        if names:
            more = f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else ""
            problems.append(f"{label}: {', '.join(names[:_SHOWN])}{more}")
    if problems:
        raise InputError(f"{source} does not fit the model {getattr(model, 'backbone_name', '')} "
                         f"(check MODEL.NAME / MODEL.LAST_STRIDE / MODEL.GEN_CHANNELS): {'; '.join(problems)}")
    model.load_state_dict(dict(state))
