"""Physics priors of haze used without ground truth.

Images are B x 3 x H x W in [0, 1]. Every prior uses every image of the batch, vectorised, on the
input's device. Min filters see only real pixels: the border is padded with +inf before the min-pool.
A p x p window at pixel (i, j) spans rows i - (p - 1) // 2 .. i + p // 2 (and likewise columns), so
odd and even windows both keep the H x W size.
"""

import torch
import torch.nn.functional as F

from ..utils.errors import InputError
from .precision import full_precision

EPS = 1e-6


def _check_images(name: str, img: torch.Tensor) -> None:
    """Raise InputError unless ``img`` is B x 3 x H x W."""
    if img.dim() != 4 or img.shape[1] != 3:
        raise InputError(f"{name} must be B x 3 x H x W, got shape {tuple(img.shape)}")


def _check_pair(clear: torch.Tensor, hazy: torch.Tensor) -> None:
    """Raise InputError unless ``clear`` and ``hazy`` are images of the same shape."""
    _check_images("clear", clear)
    _check_images("hazy", hazy)
    if clear.shape != hazy.shape:
        raise InputError(f"clear and hazy must have the same shape, got {tuple(clear.shape)} and {tuple(hazy.shape)}")


def _min_filter(x: torch.Tensor, patch: int) -> torch.Tensor:
    """Min over a patch x patch window of each pixel of B x 1 x H x W maps, same size, border windows cropped.

    The window is separable (the min of column minima), so it runs as a 1 x p then a p x 1 pass: 2p
    comparisons a pixel instead of p^2.
    """
    if patch == 1:
        return x
    before, after = (patch - 1) // 2, patch // 2
    rows = F.pad(x, (before, after, 0, 0), value=float("inf"))
    rows = -F.max_pool2d(-rows, kernel_size=(1, patch), stride=1)
    columns = F.pad(rows, (0, 0, before, after), value=float("inf"))
    return -F.max_pool2d(-columns, kernel_size=(patch, 1), stride=1)


def _dark_channel(img: torch.Tensor, patch: int) -> torch.Tensor:
    """DC_p(I): min over the three channels and a p x p window, B x 1 x H x W."""
    return _min_filter(img.amin(dim=1, keepdim=True), patch)


@full_precision
def dcp_loss(img: torch.Tensor, patch: int = 35) -> torch.Tensor:
    """Dark channel prior (He et al., CVPR 2009): mean of DC_patch(img) over all pixels and images.

    Minimising it lowers the dark channel, as a haze-free image should have.
    """
    _check_images("img", img)
    if int(patch) != patch or patch < 1:
        raise InputError(f"LOSS.DCP_PATCH must be a positive integer, got {patch}")
    return _dark_channel(img, int(patch)).mean()


@full_precision
def tv_loss(img: torch.Tensor) -> torch.Tensor:
    """Total variation: mean |horizontal difference| + mean |vertical difference| over all channels, pixels, images."""
    _check_images("img", img)
    if img.shape[-2] < 2 or img.shape[-1] < 2:
        raise InputError(f"img must be at least 2 x 2 pixels for tv_loss, got {tuple(img.shape[-2:])}")
    horizontal = (img[..., :, 1:] - img[..., :, :-1]).abs().mean()
    vertical = (img[..., 1:, :] - img[..., :-1, :]).abs().mean()
    return horizontal + vertical


@full_precision
def midc_loss(clear: torch.Tensor, hazy: torch.Tensor) -> torch.Tensor:
    """Monotonically increasing dark channel: haze must not darken the per-pixel dark channel.

    Per image, with d_c, d_h the channel minima and m = [d_c > d_h]: sum(m |d_h - d_c|) / max(sum(m), 1);
    the loss is the mean of these per-image values over the batch.
    """
    _check_pair(clear, hazy)
    d_clear = clear.amin(dim=1)
    d_hazy = hazy.amin(dim=1)
    mask = (d_clear > d_hazy).to(clear.dtype)
    violation = (mask * (d_hazy - d_clear).abs()).flatten(1).sum(dim=1)
    count = mask.flatten(1).sum(dim=1).clamp_min(1.0)
    return (violation / count).mean()


@full_precision
def estimate_airlight(hazy: torch.Tensor) -> torch.Tensor:
    """Airlight A (B x 3): mean colour of each hazy image at the top 0.1% (at least 1) of its 3x3-eroded dark channel.

    k = max(1, H W // 1000); every pixel whose eroded dark channel reaches the k-th largest value is
    used (ties at that threshold included), so the result does not depend on the order of equal values.
    """
    _check_images("hazy", hazy)
    batch, _, height, width = hazy.shape
    eroded = _dark_channel(hazy, 3).flatten(1)
    k = max(1, height * width // 1000)
    threshold = torch.topk(eroded, k, dim=1).values[:, -1:]
    mask = (eroded >= threshold).to(hazy.dtype)
    colours = hazy.flatten(2)
    return (colours * mask[:, None, :]).sum(dim=2) / mask.sum(dim=1, keepdim=True)


def _chromaticity(x: torch.Tensor, dim: int) -> torch.Tensor:
    """x / max(sum of x over ``dim``, EPS)."""
    return x / x.sum(dim=dim, keepdim=True).clamp_min(EPS)


def _unit(x: torch.Tensor) -> torch.Tensor:
    """x / max(|x|, EPS) with the Euclidean norm over channels (dim 1), safe to differentiate at 0."""
    norm = x.pow(2).sum(dim=1, keepdim=True).clamp_min(EPS * EPS).sqrt()
    return x / norm


@full_precision
def cr_loss(clear: torch.Tensor, hazy: torch.Tensor) -> torch.Tensor:
    """Colinear relation (haze-lines, Berman et al., CVPR 2016): hazy and clear chromaticities lie on one line from A.

    s = hazy / sum_c(hazy), g = clear / sum_c(clear), a = A / sum(A) with A = estimate_airlight(hazy),
    held constant (detached); loss = MSE between (s - a)/|s - a| and (g - a)/|g - a|, the mean over
    channels, pixels and images. Sums and norms are guarded as max(., 1e-6).
    """
    _check_pair(clear, hazy)
    airlight = estimate_airlight(hazy).detach()
    a = _chromaticity(airlight, dim=1)[:, :, None, None]
    s = _chromaticity(hazy, dim=1)
    g = _chromaticity(clear, dim=1)
    return F.mse_loss(_unit(s - a), _unit(g - a))
