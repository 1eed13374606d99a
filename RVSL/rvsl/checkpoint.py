"""One home for weight files: what a file holds, the one writer of RVSL checkpoints, and a model built from a file.

:func:`read_weights` loads a file with ``weights_only=True`` and tells its format: an RVSL checkpoint
(written here, by :func:`write_checkpoint`), a reference-format state dict (the reference code's stage
models) or an ImageNet state dict (torchvision or IBN-Net layout). An RVSL checkpoint is a dict: the
model's state under ``model``, then ``stage``, ``epoch``, ``config`` (plain data), ``metrics`` and
``num_classes``, then what its writer adds (a trainer's training state, AdaBN's record).

:func:`load_inference_model` builds the trained model of an RVSL or reference file for use, and
:func:`test_size` gives the input size its images are read at: the rule of every command that uses a model.
"""

import logging
from pathlib import Path
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import torch

from .config import CfgNode, config_from_dict, config_to_dict, with_values
from .modeling import RVSL, build_model
from .modeling.reference import from_reference, is_reference_state, reference_key
from .modeling.weights import backbone_state, strip_module
from .utils.errors import InputError
from .utils.io import atomic_path, safe_load

logger = logging.getLogger(__name__)

RVSL_FORMAT, REFERENCE_FORMAT, IMAGENET_FORMAT = "rvsl", "reference", "imagenet"
FORMATS = (RVSL_FORMAT, REFERENCE_FORMAT, IMAGENET_FORMAT)
MODEL_KEY, CONFIG_KEY = "model", "config"
# Keys every RVSL checkpoint carries (write_checkpoint also writes num_classes).
REQUIRED_KEYS = (MODEL_KEY, "stage", "epoch", CONFIG_KEY, "metrics")
_SHOWN = 8  # names listed in an error about missing or unexpected keys


class Weights(NamedTuple):
    """A weight file's content: ``format`` (one of :data:`FORMATS`), the model ``state``, ``config`` and ``meta``.

    ``state`` is our state dict (RVSL), the file's own reference-named one (reference, mapped when loaded
    into a model) or the backbone's tensors (ImageNet). ``config`` is the RVSL checkpoint's own, None for the
    others. ``meta`` is every other entry of an RVSL checkpoint (``stage``, ``epoch``, ``metrics``,
    ``num_classes``, a trainer's training state); for a reference file ``stage`` ("stage1" or "stage2/3"),
    ``epoch`` (-1), ``num_classes`` and ``classifier`` (its name in the file); empty for ImageNet.
    """

    format: str
    state: Dict[str, Any]
    config: Optional[CfgNode]
    meta: Dict[str, Any]

    def entries(self) -> Dict[str, Any]:
        """An RVSL checkpoint's entries except its config: the model's state under ``model``, then ``meta``."""
        return {MODEL_KEY: self.state, **self.meta}


def is_rvsl_checkpoint(payload: Any) -> bool:
    """Whether a loaded object is an RVSL checkpoint (as opposed to a bare state dict)."""
    return isinstance(payload, dict) and all(key in payload for key in REQUIRED_KEYS)


def read_weights(path: str, key: str, formats: Sequence[str] = FORMATS, stage: Optional[str] = None) -> Weights:
    """The weights in ``path``, loaded safely (:func:`rvsl.utils.io.safe_load`), in one of ``formats``.

    :class:`InputError` names ``key`` (the option or config key that gave ``path``) and the file when it is in
    none of them, when ``stage`` is given and it is an RVSL checkpoint of another stage, or when its stored
    config or its reference keys do not fit. Anything neither RVSL nor reference counts as ImageNet.
    """
    payload = safe_load(path, key)
    source = f"{key}: {path}"
    found = (RVSL_FORMAT if is_rvsl_checkpoint(payload) else
             REFERENCE_FORMAT if is_reference_state(payload) else IMAGENET_FORMAT)
    if found not in formats:
        if tuple(formats) == (RVSL_FORMAT,):
            missing = [k for k in REQUIRED_KEYS if not isinstance(payload, dict) or k not in payload]
            raise InputError(f"{source} is not an RVSL checkpoint (missing {', '.join(missing)}); "
                             f"expected a file written by the RVSL trainers")
        have = sorted(payload)[:_SHOWN] if isinstance(payload, dict) else type(payload).__name__
        raise InputError(f"{source} is neither an RVSL checkpoint (keys {', '.join(REQUIRED_KEYS)}) nor a "
                         f"reference RVSL state dict (keys under Ec., Ef., Dreid., bottleneck.); found {have}")
    if found == RVSL_FORMAT:
        if stage is not None and payload["stage"] != stage:
            raise InputError(f"{source} is a {payload['stage']} checkpoint; expected {stage}")
        meta = {k: v for k, v in payload.items() if k not in (MODEL_KEY, CONFIG_KEY)}
        return Weights(found, payload[MODEL_KEY], config_from_dict(payload[CONFIG_KEY], source), meta)
    if found == REFERENCE_FORMAT:
        state, classifier = from_reference(payload, source)  # every key must map
        meta = {"stage": "stage1" if classifier == "classifier" else "stage2/3", "epoch": -1,
                "num_classes": int(state["reid.classifier.weight"].shape[0]), "classifier": classifier}
        return Weights(found, payload, None, meta)
    return Weights(found, backbone_state(payload, path), None, {})


def save_checkpoint(payload: Dict[str, Any], path: Union[str, Path]) -> None:
    """Write ``payload`` atomically and durably: a kill or a full disk during the save leaves the previous file
    intact (the latter an :class:`InputError` naming the folder)."""
    with atomic_path(path, durable=True) as tmp, open(tmp, "wb") as handle:
        torch.save(payload, handle)  # through a Python file: a failed write is an OSError with its errno


def write_checkpoint(path: Union[str, Path], model_state: Mapping[str, Any], *, stage: str, epoch: int,
                     config: Union[CfgNode, Dict], num_classes: int, metrics: Optional[Dict] = None,
                     **extra: Any) -> Path:
    """Write an RVSL checkpoint (:func:`save_checkpoint`): ``model_state``, the stage, epoch, config (stored as
    plain data), metrics and class count, then ``extra`` (a trainer's training state, AdaBN's record)."""
    payload = {MODEL_KEY: model_state, "stage": stage, "epoch": epoch, CONFIG_KEY: config_to_dict(config),
               "metrics": {} if metrics is None else metrics, "num_classes": num_classes, **extra}
    save_checkpoint(payload, path)
    return Path(path)


def load_inference_model(path: str, key: str, cfg: CfgNode) -> Tuple[RVSL, CfgNode, Dict[str, Any]]:
    """(model in eval mode on the CPU, the config it was built from, info) for the weights in ``path``.

    An RVSL checkpoint brings its own config; a reference-format state dict holds none, so the model
    is built from ``cfg`` with as many classes as its classifier has rows and the reference's generators
    (``MODEL.GENERATOR`` reference, whatever ``cfg`` says), and every key must match by name and shape.
    ``key`` names the option or config key that gave ``path`` in error messages. ``info``: format, stage,
    epoch and class count.
    """
    weights = read_weights(path, key, formats=(RVSL_FORMAT, REFERENCE_FORMAT))
    source = f"{key}: {path}"
    num_classes = int(weights.meta["num_classes"])
    if weights.format == RVSL_FORMAT:
        model_cfg = weights.config
        model = build_model(model_cfg, num_classes)
        _load_exactly(model, weights.state, source, lambda k: k)
    else:
        model_cfg = with_reference_generators(cfg)
        model = build_model(model_cfg, num_classes)
        load_reference_weights(model, weights.state, source)
    info = {"format": weights.format, "stage": weights.meta["stage"], "epoch": int(weights.meta["epoch"]),
            "num_classes": num_classes}
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
