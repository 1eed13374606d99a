"""``export.py``: the test-time networks as ONNX graphs (no PyTorch needed to run them).

Each graph takes one float32 input ``images``, N x 3 x H x W RGB in [0, 1] at the checkpoint's
``INPUT.SIZE_TEST`` (normalisation is inside the graph), with a dynamic batch dimension:
``reid_clear`` / ``reid_hazy`` give the BN feature of one branch, ``reid_fused`` the evaluator's
fused feature, ``dehaze`` G_C(E_H(images)).
"""

import argparse
import logging
import warnings
from pathlib import Path
from typing import Dict, Tuple

import torch
from torch import nn

from ..checkpoint import load_inference_model, size_override, test_size
from ..config import CfgNode
from ..modeling import RVSL
from ..utils.io import atomic_path
from .commands import output_folder, weight_argument

logger = logging.getLogger(__name__)

OPSET = 17


class BranchFeature(nn.Module):
    """The test-time feature of one branch ("clear" or "hazy")."""

    def __init__(self, model: RVSL, branch: str) -> None:
        super().__init__()
        self.model, self.branch = model, branch

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """B x feat_dim BN features."""
        return self.model(images, self.branch)


class FusedFeature(nn.Module):
    """Mean of the L2-normalised clear and hazy features."""

    def __init__(self, model: RVSL) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """B x feat_dim fused features."""
        return self.model.fused_feature(self.model(images, "clear"), self.model(images, "hazy"))


class Dehaze(nn.Module):
    """G_C(E_H(images)): the dehazed image in [0, 1]."""

    def __init__(self, model: RVSL) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """B x 3 x H x W dehazed images."""
        return self.model.translate(images, "hazy")


def export_graphs(model: RVSL) -> Dict[str, nn.Module]:
    """The four exported networks by file stem, in eval mode (the exporter restores each wrapper's mode, and
    a wrapper left in training mode would put ``model`` back in training mode too)."""
    nets = {"reid_hazy": BranchFeature(model, "hazy"), "reid_clear": BranchFeature(model, "clear"),
            "reid_fused": FusedFeature(model), "dehaze": Dehaze(model)}
    return {stem: net.eval() for stem, net in nets.items()}


def export_onnx(model: RVSL, size: Tuple[int, int], out_dir: Path) -> Dict[str, Path]:
    """Write ``reid_hazy.onnx``, ``reid_clear.onnx``, ``reid_fused.onnx`` and ``dehaze.onnx`` to ``out_dir``."""
    model = model.float().cpu().eval()
    example = torch.rand(2, 3, *size)
    written: Dict[str, Path] = {}
    for stem, net in export_graphs(model).items():
        target = Path(out_dir) / f"{stem}.onnx"
        output = "dehazed" if stem == "dehaze" else "features"
        with atomic_path(target) as tmp, torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)  # input-shape checks become constants: fine
            warnings.filterwarnings("ignore", message=".*instance_norm.*")  # IBN's InstanceNorm uses input stats: right
            torch.onnx.export(net, (example,), str(tmp), input_names=["images"], output_names=[output],
                              dynamic_axes={"images": {0: "batch"}, output: {0: "batch"}}, opset_version=OPSET,
                              dynamo=False)
        written[stem] = target
        logger.info("wrote %s (input images: N x 3 x %d x %d float32 RGB in [0, 1])", target, *size)
    return written


def export_arguments(parser: argparse.ArgumentParser) -> None:
    """``--weight W`` and ``--output OUT``."""
    weight_argument(parser)
    parser.add_argument("--output", required=True, metavar="OUT", help="output folder for the .onnx files")


def run_export(cfg: CfgNode, args: argparse.Namespace) -> Dict[str, Path]:
    """Export ``--weight`` to ONNX in ``--output``."""
    model, model_cfg, _ = load_inference_model(args.weight, "--weight", cfg)
    out = output_folder(args.output)
    return export_onnx(model, test_size(model_cfg, size_override(cfg, args.opts)), out)
