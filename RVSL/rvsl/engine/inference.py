"""Evaluation of a checkpoint on one test set: metrics table, ``metrics.json`` and pictures."""

import argparse
import logging
from pathlib import Path
from typing import Dict, List, Optional, Union

from ..checkpoint import load_inference_model, size_override, test_size
from ..config import CfgNode, with_values
from ..data.build import build_test_loader
from ..evaluation import (DatasetEvaluator, ImageQualityEvaluator, NonFiniteFeatures, PictureEvaluator, ReIDEvaluator,
                          RerankParams, inference_on_dataset)
from ..utils import comm
from ..utils.errors import InputError
from ..utils.io import write_json
from ..utils.misc import amp_dtype, channels_last
from .defaults import default_setup
from .report import format_metrics

logger = logging.getLogger(__name__)


def add_test_flag(parser: argparse.ArgumentParser) -> None:
    """``-t``: the reference code's evaluation flag, accepted (and implied) by ``inference.py``."""
    parser.add_argument("-t", "--test", action="store_true", help="evaluation (the reference code's flag)")


def build_evaluators(cfg: CfgNode, num_query: int,
                     vis_dir: Optional[Union[str, Path]] = None) -> List[DatasetEvaluator]:
    """ReID metrics (TEST.DISTANCE, TEST.RERANK*) and image quality; pictures (TEST.VIS_NUM) into ``vis_dir``
    if given."""
    test = cfg.TEST
    rerank = RerankParams(test.RERANK_K1, test.RERANK_K2, test.RERANK_LAMBDA) if test.RERANK else None
    reid = ReIDEvaluator(num_query, test.DISTANCE, rerank)
    evaluators: List[DatasetEvaluator] = [reid, ImageQualityEvaluator()]
    if vis_dir is not None:
        evaluators.append(PictureEvaluator(vis_dir, test.VIS_NUM, ranked_by=reid))
    return evaluators


def run_inference(cfg: CfgNode, args: argparse.Namespace) -> Dict:
    """Evaluate ``TEST.WEIGHT`` on ``TEST.DATA``; the model is built from the checkpoint's own config, and the
    images are read at its ``INPUT.SIZE_TEST`` unless the command line gives one (:func:`test_size`)."""
    device = default_setup(cfg)
    model, model_cfg, info = load_inference_model(cfg.TEST.WEIGHT, "TEST.WEIGHT", cfg)  # ours or reference format
    model.to(device)
    size = test_size(model_cfg, size_override(cfg, args.opts))
    if list(size) != list(cfg.INPUT.SIZE_TEST):
        cfg = with_values(cfg, {"INPUT.SIZE_TEST": list(size)})
    nhwc = channels_last(cfg.MODEL.CHANNELS_LAST, device, model)  # as the trainer lays it out (CUDA only)

    loader, num_query = build_test_loader(cfg, cfg.TEST.DATA)
    test = cfg.TEST
    vis_dir = Path(cfg.OUTPUT_DIR) / "vis" if test.VIS else None
    try:
        metrics = inference_on_dataset(model, loader, build_evaluators(cfg, num_query, vis_dir), device,
                                       amp_dtype(cfg.SOLVER.AMP, device), nhwc)
    except NonFiniteFeatures as exc:
        raise InputError(f"TEST.WEIGHT {cfg.TEST.WEIGHT}: {exc}: the model is broken (a diverged run?)") from exc
    logger.info("%s on %s:\n%s", cfg.TEST.WEIGHT, cfg.TEST.DATA, format_metrics(metrics))
    result = {"test_set": cfg.TEST.DATA, "weight": cfg.TEST.WEIGHT, "stage": info["stage"],
              "epoch": info["epoch"], "input_size": list(size), "distance": test.DISTANCE, "rerank": test.RERANK,
              **metrics}
    if comm.is_main_process():  # under torchrun every process has the same results
        write_json(Path(cfg.OUTPUT_DIR) / "metrics.json", result)
        logger.info("metrics written to %s", Path(cfg.OUTPUT_DIR) / "metrics.json")
    return result
