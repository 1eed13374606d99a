"""Speed of the dark channel prior (stage 3's DCP term), forward and backward, against a square-window baseline.

``dcp_loss`` takes its p x p window minimum as two 1-D passes (1 x p, then p x 1); the baseline, written
here, takes it in one p x p max-pool, as the formula reads. Both run on the same random batch, each timed
best of ``--repeat``; the largest differences of their values and gradients are printed (zero up to the
order in which a pixel's gradient from several windows is summed). Sizes: the demo's 64x64 (batch 16)
and the published 384x384 (batch 6), patch 35 (``LOSS.DCP_PATCH``).

    python benchmarks/prior_speed.py
    python benchmarks/prior_speed.py --device cuda
"""

import argparse
import logging
import time
from typing import Callable, Tuple

import torch
import torch.nn.functional as F

from rvsl.losses import dcp_loss

logger = logging.getLogger("prior_speed")
SIZES = {"demo 64x64": (16, 64), "published 384x384": (6, 384)}


def square_window_dcp(img: torch.Tensor, patch: int) -> torch.Tensor:
    """The baseline: channel minimum, then one p x p min-pool over the +inf-padded map, then the mean."""
    before, after = (patch - 1) // 2, patch // 2
    dark = F.pad(img.amin(dim=1, keepdim=True), (before, after, before, after), value=float("inf"))
    return (-F.max_pool2d(-dark, kernel_size=patch, stride=1)).mean()


def timed(fn: Callable[[torch.Tensor, int], torch.Tensor], img: torch.Tensor, patch: int,
          repeat: int) -> Tuple[float, torch.Tensor, torch.Tensor]:
    """Best seconds of a forward + backward over ``repeat`` runs, the value and the gradient."""
    best = float("inf")
    for _ in range(repeat):
        x = img.clone().requires_grad_(True)
        if img.is_cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        value = fn(x, patch)
        value.backward()
        if img.is_cuda:
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best, value.detach(), x.grad


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--patch", type=int, default=35)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    device = torch.device(args.device)
    logger.info("dark channel prior, forward + backward, patch %d, %s, %d CPU thread(s)", args.patch, device,
                torch.get_num_threads())
    for name, (batch, side) in SIZES.items():
        img = torch.rand(batch, 3, side, side, generator=torch.Generator().manual_seed(0)).to(device)
        base, base_value, base_grad = timed(square_window_dcp, img, args.patch, args.repeat)
        ours, value, grad = timed(dcp_loss, img, args.patch, args.repeat)
        logger.info("%-18s batch %2d: square window %8.2f ms, separable (dcp_loss) %7.2f ms, %5.1fx faster; "
                    "largest difference: value %.1e, gradient %.1e", name, batch, 1000 * base, 1000 * ours,
                    base / ours, (value - base_value).abs().item(), (grad - base_grad).abs().max().item())


if __name__ == "__main__":
    main()
