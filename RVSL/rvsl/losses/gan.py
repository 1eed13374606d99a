"""Adversarial loss of the PatchGAN discriminators."""

import torch
import torch.nn.functional as F

from .precision import full_precision


@full_precision
def lsgan_loss(prediction: torch.Tensor, target_is_real: bool) -> torch.Tensor:
    """Least-squares GAN loss (Mao et al., ICCV 2017): mean (D(x) - 1)^2 for real, mean D(x)^2 for fake."""
    target = torch.ones_like(prediction) if target_is_real else torch.zeros_like(prediction)
    return F.mse_loss(prediction, target)


def discriminator_loss(discriminator: torch.nn.Module, real: torch.Tensor, generated: torch.Tensor) -> torch.Tensor:
    """LSGAN discriminator objective: real images to 1, generated ones to 0, halved (CycleGAN's backward_D)."""
    return 0.5 * (lsgan_loss(discriminator(real), True) + lsgan_loss(discriminator(generated), False))
