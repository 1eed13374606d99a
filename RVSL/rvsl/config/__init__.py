"""Configuration: yacs defaults, merged with a YAML file and command-line pairs, then checked."""

import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import yaml
from yacs.config import CfgNode

from .. import layout
from ..evaluation.distance import METRICS as DISTANCES
from ..evaluation.evaluator import RANKED_BRANCHES
from ..modeling.backbones import BACKBONE_NAMES as MODEL_NAMES
from ..modeling.generator import GENERATOR_STYLES
from ..utils.errors import InputError
from .defaults import _C

__all__ = ["CfgNode", "get_cfg_defaults", "load_config", "check_config", "config_from_dict", "config_to_dict",
           "with_values", "STAGES", "TEST_SETS", "MODEL_NAMES"]

# A YAML config may start from another: ``_BASE_: FVRID.yml`` (relative to the file) merges that one first.
BASE_KEY = "_BASE_"
STAGES = ("STAGE1", "STAGE2", "STAGE3")
TEST_SETS = tuple(layout.TEST_SETS)
# Label-free checkpoint-choice proxies on unlabelled real images (rvsl/evaluation/proxies.py).
REAL_PROXIES = ("cycle_psnr", "agreement", "knn_overlap")
_CHOICES = {
    "MODE.STAGE": STAGES,
    "MODEL.NAME": MODEL_NAMES,
    "MODEL.LAST_STRIDE": (1, 2),
    "MODEL.ACTIVATION_CHECKPOINT": ("auto", "none", "fullres", "generators", "all"),
    "MODEL.GENERATOR": GENERATOR_STYLES,
    "SOLVER.AMP": ("auto", "off", "bf16", "fp16"),
    "SOLVER.WARMUP_UNIT": ("iteration", "epoch"),
    "TEST.DATA": TEST_SETS,
    "TEST.DISTANCE": DISTANCES,
}
_POSITIVE = ("SOLVER.MAX_EPOCHS", "DATALOADER.NUM_IDENTITIES", "DATALOADER.NUM_INSTANCES",
             "DATALOADER.REAL_BATCH_SIZE", "DATALOADER.PREFETCH", "TEST.IMS_PER_BATCH", "SOLVER.LOG_PERIOD",
             "SOLVER.ACCUM_STEPS", "TEST.VIS_NUM")


def best_metric_choices() -> Tuple[str, ...]:
    """Every valid ``SOLVER.BEST_METRIC`` (see its comment in ``defaults.py``)."""
    ranked = [f"{source}/{branch}/{metric}" for source in ("syn_val", "test_labels")
              for branch in RANKED_BRANCHES for metric in ("mAP", "rank1", "mINP")]
    return ("last", *ranked, *(f"real_proxy/{proxy}" for proxy in REAL_PROXIES))


def get_cfg_defaults() -> CfgNode:
    """A fresh, mutable copy of the defaults of ``rvsl/config/defaults.py``."""
    return _C.clone()


def _get(cfg: CfgNode, key: str):
    node = cfg
    for part in key.split("."):
        node = node[part]
    return node


def _yacs_message(exc: Exception) -> str:
    """Turn yacs' KeyError/ValueError text into one readable line."""
    text = exc.args[0] if exc.args else str(exc)
    match = re.match(r"Non-existent (?:config )?key: (\S+)", str(text))
    if match:
        key = match.group(1)
        leaf = key.rsplit(".", 1)[-1]
        return f"unknown config key '{leaf}' (full key {key}); see RVSL/rvsl/config/defaults.py for valid keys"
    return str(text)


def check_config(cfg: CfgNode) -> None:
    """Raise :class:`InputError` naming the key of any out-of-range value."""
    for key, choices in _CHOICES.items():
        value = _get(cfg, key)
        if value not in choices:
            raise InputError(f"{key} is {value!r}; expected one of {', '.join(map(str, choices))}")
    for key in _POSITIVE:
        if _get(cfg, key) <= 0:
            raise InputError(f"{key} must be positive, got {_get(cfg, key)}")
    _check_batches(cfg)
    if cfg.SOLVER.MAX_NONFINITE < 0:
        raise InputError(f"SOLVER.MAX_NONFINITE must be 0 (no check) or positive, got {cfg.SOLVER.MAX_NONFINITE}")
    if cfg.SOLVER.BEST_METRIC not in best_metric_choices():
        raise InputError(f"SOLVER.BEST_METRIC is {cfg.SOLVER.BEST_METRIC!r}; expected last, "
                         "syn_val/BRANCH/METRIC, test_labels/BRANCH/METRIC (BRANCH clear, hazy or fused; "
                         f"METRIC mAP, rank1 or mINP) or real_proxy/PROXY (PROXY {' or '.join(REAL_PROXIES)})")
    for key in ("INPUT.SIZE_TRAIN", "INPUT.SIZE_TEST"):
        size = _get(cfg, key)
        if len(size) != 2 or any(int(s) < 32 or int(s) % 4 for s in size):
            raise InputError(f"{key} must be [height, width], each a multiple of 4 and at least 32; got {list(size)}")
    _check_input(cfg)


def _check_batches(cfg: CfgNode) -> None:
    """Training batches of at least two images: a training-mode BatchNorm given one value per channel (the BNNeck
    on a batch of one) cannot normalise it, which torch reports deep in the first iteration."""
    loader = cfg.DATALOADER
    if loader.NUM_IDENTITIES * loader.NUM_INSTANCES < 2:
        raise InputError("DATALOADER.NUM_IDENTITIES x DATALOADER.NUM_INSTANCES is 1: a training batch of one pair "
                         "leaves the BatchNorm layers one value per channel; make the batch at least 2")
    if cfg.MODE.STAGE != "STAGE1" and loader.REAL_BATCH_SIZE < 2:
        raise InputError(f"DATALOADER.REAL_BATCH_SIZE is {loader.REAL_BATCH_SIZE}: a training batch of one real "
                         "image leaves the BatchNorm layers one value per channel; use at least 2")


def _within(key: str, value, low: float, high: float, count: int = 1, ascending: bool = False) -> None:
    """Raise naming ``key`` unless it holds ``count`` numbers in ``[low, high]`` (``ascending``: low <= high)."""
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    if (len(values) != count or not numbers or not all(low <= v <= high for v in values)
            or (ascending and values != sorted(values))):
        shape = "[low, high] with low <= high" if ascending else "a number" if count == 1 else f"{count} numbers"
        raise InputError(f"{key} must be {shape}, each in [{low}, {high}]; got {value!r}")


def _check_input(cfg: CfgNode) -> None:
    """Ranges of the augmentation keys (INPUT.*), of the warm-up and of the validation splits (VAL.*)."""
    _within("INPUT.FLIP_PROB", cfg.INPUT.FLIP_PROB, 0.0, 1.0)
    _within("INPUT.RESIZE_RANGE", cfg.INPUT.RESIZE_RANGE, 1.0, 4.0, 2, ascending=True)
    _within("INPUT.PADDING", cfg.INPUT.PADDING, 0, min(cfg.INPUT.SIZE_TRAIN))
    _within("INPUT.ERASE_PROB", cfg.INPUT.ERASE_PROB, 0.0, 1.0)
    _within("INPUT.ERASE_AREA", cfg.INPUT.ERASE_AREA, 1e-6, 1.0, 2, ascending=True)
    _within("INPUT.ERASE_ASPECT", cfg.INPUT.ERASE_ASPECT, 1e-3, 1.0)
    _within("INPUT.ERASE_FILL", cfg.INPUT.ERASE_FILL, 0.0, 1.0, 3)
    _within("INPUT.JITTER_PROB", cfg.INPUT.JITTER_PROB, 0.0, 1.0)
    _within("INPUT.JITTER", cfg.INPUT.JITTER, 0.0, 1.0, 4)
    _within("INPUT.BLUR_PROB", cfg.INPUT.BLUR_PROB, 0.0, 1.0)
    _within("INPUT.BLUR_SIGMA", cfg.INPUT.BLUR_SIGMA, 0.0, 0.5, 2, ascending=True)
    _within("INPUT.NOISE_STD", cfg.INPUT.NOISE_STD, 0.0, 1.0)
    _within("SOLVER.WARMUP_FACTOR", cfg.SOLVER.WARMUP_FACTOR, 1e-8, 1.0)
    _within("SOLVER.WARMUP_LENGTH", cfg.SOLVER.WARMUP_LENGTH, 0, float("inf"))
    _within("SOLVER.SCHEDULE_OFFSET", cfg.SOLVER.SCHEDULE_OFFSET, 0, float("inf"))
    for key in ("VAL.SYN_IDENTITIES", "VAL.REAL_IMAGES"):
        if _get(cfg, key) < 0:
            raise InputError(f"{key} must be 0 (nothing held out) or a positive count, got {_get(cfg, key)}")
    source = cfg.SOLVER.BEST_METRIC.split("/")[0]
    if source == "syn_val" and cfg.VAL.SYN_IDENTITIES == 0:
        raise InputError(f"SOLVER.BEST_METRIC {cfg.SOLVER.BEST_METRIC} needs a synthetic validation split: "
                         "set VAL.SYN_IDENTITIES > 0")
    if source == "real_proxy" and (cfg.VAL.REAL_IMAGES == 0 or cfg.MODE.STAGE == "STAGE1"):
        raise InputError(f"SOLVER.BEST_METRIC {cfg.SOLVER.BEST_METRIC} needs held-out real images: set "
                         "VAL.REAL_IMAGES > 0, in stage 2 or 3 (stage 1 reads no real image)")


def _yaml_chain(path: Path) -> List[Tuple[Path, CfgNode]]:
    """``path`` and the files it inherits from through ``_BASE_`` (relative to the file), base first, each
    read as a config node without its ``_BASE_`` key; :class:`InputError` names the file at fault."""
    chain: List[Tuple[Path, CfgNode]] = []
    while True:
        if not path.is_file():
            raise InputError(f"config file not found: {path}" + (f" (the _BASE_ of {chain[0][0]})" if chain else ""))
        if any(path.resolve() == seen.resolve() for seen, _ in chain):
            raise InputError(f"{chain[0][0]}: its _BASE_ chain comes back to {path}")
        try:
            with open(path, encoding="utf-8") as handle:
                node = CfgNode.load_cfg(handle)
        except (yaml.YAMLError, ValueError, TypeError, AttributeError) as exc:
            raise InputError(f"{path}: not a readable YAML config ({exc})") from exc
        base = node.pop(BASE_KEY, None)
        chain.insert(0, (path, node))
        if base is None:
            return chain
        if not isinstance(base, str):
            raise InputError(f"{path}: _BASE_ must be one file name, got {base!r}")
        path = path.parent / base


def load_config(config_file: Optional[str] = None, opts: Sequence[str] = (), stage: Optional[str] = None) -> CfgNode:
    """Defaults, then ``config_file`` (after the files it names as ``_BASE_``), then ``KEY VALUE`` ``opts``;
    checked and frozen.

    ``stage`` (set by a stage's entry script) fixes ``MODE.STAGE``; an explicit different value in
    ``opts`` is an error. Every problem raises :class:`InputError` naming the file or key.
    """
    cfg = get_cfg_defaults()
    if config_file:
        for path, node in _yaml_chain(Path(config_file)):
            try:
                cfg.merge_from_other_cfg(node)
            except (KeyError, ValueError, TypeError, AttributeError) as exc:
                raise InputError(f"{path}: {_yacs_message(exc)}") from exc
    opts = list(opts)
    if len(opts) % 2:
        raise InputError(f"command-line options must be KEY VALUE pairs; '{opts[-1]}' has no value")
    try:
        cfg.merge_from_list(opts)
    except (KeyError, ValueError, TypeError, AttributeError, AssertionError) as exc:
        raise InputError(f"command line: {_yacs_message(exc)}") from exc
    if stage is not None:
        given = dict(zip(opts[0::2], opts[1::2])).get("MODE.STAGE")
        if given is not None and given != stage:
            raise InputError(f"MODE.STAGE is {given} but this script trains {stage}")
        cfg.MODE.STAGE = stage
    check_config(cfg)
    cfg.freeze()
    return cfg


def config_from_dict(data: dict, source: str = "checkpoint") -> CfgNode:
    """Rebuild a frozen config from the plain dict stored in a checkpoint; :class:`InputError` names
    ``source`` when it does not fit these defaults (for instance, a file written by an older RVSL)."""
    cfg = get_cfg_defaults()
    try:
        cfg.merge_from_other_cfg(CfgNode(data))
        check_config(cfg)
    except (KeyError, ValueError, TypeError, AttributeError, AssertionError) as exc:
        raise InputError(f"{source}: its stored config does not fit this version of RVSL "
                         f"({_yacs_message(exc)})") from exc
    cfg.freeze()
    return cfg


def with_values(cfg: CfgNode, values: Dict[str, Any]) -> CfgNode:
    """A frozen copy of ``cfg`` with the dotted ``values`` set (``{"INPUT.SIZE_TEST": [64, 64]}``)."""
    cfg = cfg.clone()
    cfg.defrost()
    for key, value in values.items():
        *path, leaf = key.split(".")
        node = cfg
        for part in path:
            node = node[part]
        node[leaf] = value
    cfg.freeze()
    return cfg


def config_to_dict(node):
    """Plain nested dicts and lists of a config (safe for ``torch.load(weights_only=True)``)."""
    if isinstance(node, CfgNode):
        return {k: config_to_dict(v) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [config_to_dict(v) for v in node]
    return node
