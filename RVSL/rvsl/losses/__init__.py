"""Losses: identity (CE, triplet), translation and consistency, LSGAN, and the haze priors."""

from .gan import discriminator_loss, lsgan_loss
from .priors import cr_loss, dcp_loss, estimate_airlight, midc_loss, tv_loss
from .reid import cross_entropy, pairwise_distance, reid_loss, triplet_loss
from .translation import consistency_loss, translation_loss

__all__ = [
    "consistency_loss",
    "cr_loss",
    "cross_entropy",
    "dcp_loss",
    "discriminator_loss",
    "estimate_airlight",
    "lsgan_loss",
    "midc_loss",
    "pairwise_distance",
    "reid_loss",
    "tv_loss",
    "translation_loss",
    "triplet_loss",
]
