"""Per-image PSNR and SSIM for batches of RGB images in [0, 1] (B x 3 x H x W), and the evaluator that
scores the generators with them on batches that carry a clear twin."""

import logging
from typing import Dict, FrozenSet, List, Mapping, Sequence

import torch
import torch.nn.functional as F

from .base import DatasetEvaluator

logger = logging.getLogger(__name__)

# PSNR of identical images would be infinite; the MSE is floored so that it is capped at 100 dB instead,
# which keeps batch means finite.
PSNR_MAX_DB = 100.0
_MSE_FLOOR = 10.0 ** (-PSNR_MAX_DB / 10.0)


def _check_pair(pred: torch.Tensor, target: torch.Tensor) -> None:
    """Both must be B x C x H x W with the same shape."""
    if pred.dim() != 4 or pred.shape != target.shape:
        raise ValueError(f"pred and target must be B x C x H x W of the same shape, "
                         f"got {tuple(pred.shape)} and {tuple(target.shape)}")


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB for data range 1: 10 log10(1 / MSE), capped at ``PSNR_MAX_DB`` (identical images)."""
    _check_pair(pred, target)
    mse = (pred.float() - target.float()).pow(2).flatten(1).mean(1)
    return 10.0 * torch.log10(1.0 / mse.clamp(min=_MSE_FLOOR))


def _gaussian_window(size: int, sigma: float, channels: int, device: torch.device) -> torch.Tensor:
    """A normalised size x size Gaussian kernel, one per channel (for a grouped convolution)."""
    x = torch.arange(size, dtype=torch.float32, device=device) - (size - 1) / 2.0
    g = torch.exp(-(x ** 2) / (2.0 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim(pred: torch.Tensor, target: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Per-image SSIM (Wang et al., IEEE TIP 2004): Gaussian window 11 / sigma 1.5, C1 = 0.01^2, C2 = 0.03^2.

    Local statistics use the valid part of the image only (no padding, as in the authors' MATLAB code);
    the SSIM map is averaged over positions and then over channels. Images smaller than the window
    raise ValueError.
    """
    _check_pair(pred, target)
    if min(pred.shape[-2:]) < window:
        raise ValueError(f"SSIM needs images of at least {window} x {window}, got {tuple(pred.shape[-2:])}")
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    with torch.autocast(device_type=pred.device.type, enabled=False):
        x, y = pred.float(), target.float()
        channels = x.shape[1]
        kernel = _gaussian_window(window, sigma, channels, x.device)

        def blur(t: torch.Tensor) -> torch.Tensor:
            return F.conv2d(t, kernel, groups=channels)

        # (co)variances do not change under a common shift; centring first avoids float32 cancellation
        shift = ((x + y) / 2).mean(dim=(2, 3), keepdim=True)
        x, y = x - shift, y - shift
        mu_x, mu_y = blur(x), blur(y)
        var_x = blur(x * x) - mu_x ** 2
        var_y = blur(y * y) - mu_y ** 2
        cov = blur(x * y) - mu_x * mu_y
        mu_x, mu_y = mu_x + shift, mu_y + shift
        ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
        return ssim_map.flatten(2).mean(2).mean(1)



QUALITY_KEYS = ("dehaze_psnr", "dehaze_ssim", "rehaze_psnr", "rehaze_ssim")


class ImageQualityEvaluator(DatasetEvaluator):
    """Mean PSNR and SSIM of dehaze G_C(E_H(img)) vs the clear twin and rehaze G_H(E_C(twin)) vs img.

    Only batches with a "twin" count (the synthetic set); ``evaluate`` gives {"quality": {QUALITY_KEYS}},
    or {} when no batch had a twin. The per-image scores are kept (on the CPU), so that the shards of a
    distributed run can be gathered and averaged exactly as one process would.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget the scores."""
        self._scores: Dict[str, List[torch.Tensor]] = {key: [] for key in QUALITY_KEYS}

    def needs(self, batch: Mapping) -> FrozenSet[str]:
        """Dehazed and re-hazed images, for batches with a twin only."""
        return frozenset({"dehazed", "rehazed"}) if "twin" in batch else frozenset()

    def process(self, batch: Mapping, outputs: Mapping[str, torch.Tensor]) -> None:
        """Keep the per-image scores of a batch with a twin; other batches are ignored."""
        if "twin" not in batch:
            return
        dehazed, rehazed = outputs["dehazed"], outputs["rehazed"]
        img, twin = batch["img"].to(dehazed.device), batch["twin"].to(dehazed.device)
        for key, value in (("dehaze_psnr", psnr(dehazed, twin)), ("dehaze_ssim", ssim(dehazed, twin)),
                           ("rehaze_psnr", psnr(rehazed, img)), ("rehaze_ssim", ssim(rehazed, img))):
            self._scores[key].append(value.detach().float().cpu())

    def state(self) -> Dict[str, List[torch.Tensor]]:
        """The per-image scores so far (CPU tensors, one per batch)."""
        return self._scores

    def load_states(self, states: Sequence[Dict[str, List[torch.Tensor]]]) -> None:
        """Take the scores of every process's :meth:`state`, in order."""
        self._scores = {key: [scores for state in states for scores in state[key]] for key in QUALITY_KEYS}

    def evaluate(self) -> Dict[str, Dict[str, float]]:
        """{"quality": means over the images with a twin}, or {} if there were none."""
        if not self._scores[QUALITY_KEYS[0]]:
            return {}
        scores = {key: torch.cat(parts).double() for key, parts in self._scores.items()}
        means = {key: float(values.mean()) for key, values in scores.items()}
        logger.debug("image quality over %d images: %s", scores[QUALITY_KEYS[0]].numel(),
                     ", ".join(f"{k} {v:.4f}" for k, v in means.items()))
        return {"quality": means}
