"""Evaluation: distances, re-ranking, ranking metrics, image quality, the evaluator and pictures."""

from .distance import compute_distance
from .evaluator import ReIDEvaluator, inference_on_dataset
from .quality import PSNR_MAX_DB, psnr, ssim
from .rank import evaluate_features, evaluate_rank
from .rerank import re_ranking
from .visualize import save_rank_list, save_triplets

__all__ = [
    "PSNR_MAX_DB",
    "ReIDEvaluator",
    "compute_distance",
    "evaluate_features",
    "evaluate_rank",
    "inference_on_dataset",
    "psnr",
    "re_ranking",
    "save_rank_list",
    "save_triplets",
    "ssim",
]
