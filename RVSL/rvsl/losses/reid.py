"""Identity losses: cross-entropy with label smoothing and the batch-hard triplet loss."""

import torch
import torch.nn.functional as F

from ..modeling.rvsl_model import ReIDOutput
from ..utils.errors import InputError
from .precision import full_precision


def _check_targets(name: str, batch: torch.Tensor, targets: torch.Tensor) -> None:
    """Raise InputError unless ``targets`` is one label per row of ``batch``."""
    if batch.dim() != 2:
        raise InputError(f"{name} must be B x D, got shape {tuple(batch.shape)}")
    if targets.dim() != 1 or targets.shape[0] != batch.shape[0]:
        raise InputError(f"targets must be a vector of {batch.shape[0]} labels, got shape {tuple(targets.shape)}")


@full_precision
def cross_entropy(logits: torch.Tensor, targets: torch.Tensor, label_smooth: float = 0.0) -> torch.Tensor:
    """Cross-entropy against (1 - e) one-hot + e / K (label smoothing, Szegedy et al. 2016), mean over the batch."""
    _check_targets("logits", logits, targets)
    if not 0.0 <= label_smooth < 1.0:
        raise InputError(f"LOSS.LABEL_SMOOTH must be in [0, 1), got {label_smooth}")
    return F.cross_entropy(logits, targets, label_smoothing=float(label_smooth))


@full_precision
def pairwise_distance(features: torch.Tensor) -> torch.Tensor:
    """Euclidean distance matrix B x B of the rows of ``features`` (clamped at 1e-12 before the square root)."""
    squared = features.pow(2).sum(dim=1)
    dist2 = squared[:, None] + squared[None, :] - 2.0 * features @ features.t()
    return dist2.clamp_min(1e-12).sqrt()


@full_precision
def triplet_loss(features: torch.Tensor, targets: torch.Tensor, margin: float = 0.3) -> torch.Tensor:
    """Batch-hard triplet loss (Hermans et al. 2017): mean of max(0, d(a, hardest p) - d(a, hardest n) + margin).

    Euclidean distances; the hardest positive is the farthest same-label sample (the anchor itself counts),
    the hardest negative the closest other-label one. Anchors without a negative are left out; a batch
    with no negative at all gives a zero loss that still belongs to the graph.
    """
    _check_targets("features", features, targets)
    dist = pairwise_distance(features)
    same = targets[:, None] == targets[None, :]
    hardest_pos = dist.masked_fill(~same, float("-inf")).amax(dim=1)
    hardest_neg = dist.masked_fill(same, float("inf")).amin(dim=1)
    valid = (~same).any(dim=1)
    if not valid.any():
        return features.sum() * 0.0
    return F.relu(hardest_pos[valid] - hardest_neg[valid] + margin).mean()


def reid_loss(output: ReIDOutput, targets: torch.Tensor, label_smooth: float = 0.0,
              margin: float = 0.3) -> torch.Tensor:
    """Cross-entropy on ``output.logits`` plus batch-hard triplet on ``output.global_feat`` (BNNeck, Luo et al.
    2019)."""
    return cross_entropy(output.logits, targets, label_smooth) + triplet_loss(output.global_feat, targets, margin)
