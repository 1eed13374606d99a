"""Evaluation: distances, re-ranking, ranking metrics, image quality, the evaluators, pictures, label-free proxies."""

from .base import IMAGE_OUTPUTS, DatasetEvaluator
from .distance import NonFiniteFeatures, compute_distance
from .evaluator import ReIDEvaluator, RerankParams, inference_on_dataset, run_model
from .proxies import knn_overlap, real_proxies
from .quality import PSNR_MAX_DB, ImageQualityEvaluator, psnr, ssim
from .rank import evaluate_features, evaluate_rank
from .rerank import re_ranking
from .visualize import PictureEvaluator, save_rank_list, save_triplets

__all__ = [
    "IMAGE_OUTPUTS",
    "PSNR_MAX_DB",
    "DatasetEvaluator",
    "ImageQualityEvaluator",
    "NonFiniteFeatures",
    "PictureEvaluator",
    "ReIDEvaluator",
    "RerankParams",
    "compute_distance",
    "evaluate_features",
    "evaluate_rank",
    "inference_on_dataset",
    "knn_overlap",
    "psnr",
    "re_ranking",
    "real_proxies",
    "run_model",
    "save_rank_list",
    "save_triplets",
    "ssim",
]
