"""Evaluation: distances, re-ranking, ranking metrics, image quality, the evaluators and pictures."""

from .base import IMAGE_OUTPUTS, DatasetEvaluator
from .distance import compute_distance
from .evaluator import ReIDEvaluator, RerankParams, inference_on_dataset, run_model
from .quality import PSNR_MAX_DB, ImageQualityEvaluator, psnr, ssim
from .rank import evaluate_features, evaluate_rank
from .rerank import re_ranking
from .visualize import PictureEvaluator, save_rank_list, save_triplets

__all__ = [
    "IMAGE_OUTPUTS",
    "PSNR_MAX_DB",
    "DatasetEvaluator",
    "ImageQualityEvaluator",
    "PictureEvaluator",
    "ReIDEvaluator",
    "RerankParams",
    "compute_distance",
    "evaluate_features",
    "evaluate_rank",
    "inference_on_dataset",
    "psnr",
    "re_ranking",
    "run_model",
    "save_rank_list",
    "save_triplets",
    "ssim",
]
