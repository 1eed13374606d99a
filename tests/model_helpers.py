"""A tiny saved RVSL checkpoint for the tests of the use-a-model commands (its fixtures live in conftest.py)."""

from pathlib import Path

import torch

from helpers import TINY_CONFIG
from rvsl.checkpoint import write_checkpoint
from rvsl.config import CfgNode, load_config
from rvsl.modeling import build_model

# The model of these tests: configs/tiny.yml's, smaller still.
TINY_OPTS = ["MODEL.LAST_STRIDE", "1", "MODEL.GEN_CHANNELS", "8"]


def tiny_model_config() -> CfgNode:
    """configs/tiny.yml with :data:`TINY_OPTS`."""
    return load_config(str(TINY_CONFIG), TINY_OPTS)


def save_tiny_checkpoint(path: Path, num_classes: int = 4, seed: int = 0) -> Path:
    """A freshly built resnet18 RVSL at 32 x 32 (BN statistics perturbed), saved as a stage-1 checkpoint."""
    cfg = tiny_model_config()
    torch.manual_seed(seed)
    model = build_model(cfg, num_classes)
    for name, buf in model.named_buffers():  # non-trivial running statistics, so eval-mode BN matters
        if name.endswith("running_mean"):
            buf.normal_(0, 0.1)
        elif name.endswith("running_var"):
            buf.uniform_(0.5, 1.5)
    return write_checkpoint(path, model.state_dict(), stage="STAGE1", epoch=1, config=cfg, num_classes=num_classes)
