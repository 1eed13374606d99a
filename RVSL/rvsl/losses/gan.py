"""Adversarial loss of the PatchGAN discriminators."""

import torch
import torch.nn.functional as F

from .precision import full_precision


@full_precision
def lsgan_loss(prediction: torch.Tensor, target_is_real: bool) -> torch.Tensor:
    """Least-squares GAN loss (Mao et al., ICCV 2017): mean (D(x) - 1)^2 for real, mean D(x)^2 for fake."""
    target = torch.ones_like(prediction) if target_is_real else torch.zeros_like(prediction)
    return F.mse_loss(prediction, target)


def discriminator_loss(discriminator: torch.nn.Module, real: torch.Tensor, generated: torch.Tensor,
                       batched: bool = False) -> torch.Tensor:
    """LSGAN discriminator objective: real images to 1, generated ones to 0, halved (CycleGAN's backward_D).

    ``batched`` judges both kinds in one pass over their concatenation (when their image shapes agree): the
    same per-image scores for a discriminator that normalises per image (InstanceNorm, no BatchNorm), and
    each kind keeps its own mean, so the loss is unchanged when the two batches differ in size.
    """
    if batched and real.shape[1:] == generated.shape[1:]:
        scores = discriminator(torch.cat([real, generated]))
        real_scores, generated_scores = scores[:len(real)], scores[len(real):]
    else:
        real_scores, generated_scores = discriminator(real), discriminator(generated)
    return 0.5 * (lsgan_loss(real_scores, True) + lsgan_loss(generated_scores, False))
