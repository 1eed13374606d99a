"""Image translation, cycle reconstruction and embedding-consistency losses."""

import torch
import torch.nn.functional as F

from ..utils.errors import InputError
from .precision import full_precision


def _check_same_shape(a_name: str, a: torch.Tensor, b_name: str, b: torch.Tensor) -> None:
    """Raise InputError unless the two tensors have the same shape."""
    if a.shape != b.shape:
        raise InputError(f"{a_name} and {b_name} must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")


@full_precision
def translation_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """SmoothL1 (Huber, beta 1) between a rendered image and its target, mean over all elements.

    Used for the synthetic translation losses and the cycle reconstruction of stages 2 and 3.
    """
    _check_same_shape("pred", pred, "target", target)
    return F.smooth_l1_loss(pred, target)


@full_precision
def consistency_loss(feat_a: torch.Tensor, feat_b: torch.Tensor) -> torch.Tensor:
    """Embedding consistency (EC): L1 between two batches of global features, mean over all elements."""
    _check_same_shape("feat_a", feat_a, "feat_b", feat_b)
    return F.l1_loss(feat_a, feat_b)
