"""Atmospheric scattering model used to render synthetic haze.

I(x) = J(x) t(x) + A (1 - t(x)),  t(x) = exp(-beta d(x)),  depth d normalised to [0, 1].
"""

from typing import Tuple, Union

import numpy as np
import torch

# Published ranges of the per-image airlight A and scattering coefficient beta.
AIRLIGHT_RANGE = (0.4, 1.0)
BETA_RANGE = (1.0, 5.0)

Array = Union[np.ndarray, torch.Tensor]


def synthesize(clear: Array, depth: Array, beta, airlight) -> Array:
    """Render haze on ``clear`` with the atmospheric scattering model.

    ``clear``: H x W x 3 numpy array in [0, 1] with H x W ``depth`` and scalar ``beta``/``airlight``
    (airlight may also be an RGB triple); or a torch batch B x 3 x H x W with depth B x H x W
    (or B x 1 x H x W) and ``beta``/``airlight`` scalars or length-B tensors (airlight also B x 3).
    Depth is used as given (normalise it to [0, 1] first). Returns the hazy image, same type.
    """
    if isinstance(clear, torch.Tensor):
        if clear.dim() != 4 or clear.shape[1] != 3:
            raise ValueError(f"clear must be B x 3 x H x W, got {tuple(clear.shape)}")
        depth = torch.as_tensor(depth, dtype=clear.dtype, device=clear.device)
        if depth.dim() == 3:
            depth = depth.unsqueeze(1)
        beta = torch.as_tensor(beta, dtype=clear.dtype, device=clear.device).reshape(-1, 1, 1, 1)
        airlight = torch.as_tensor(airlight, dtype=clear.dtype, device=clear.device)
        rgb = airlight.dim() > 0 and airlight.shape[-1] == 3
        airlight = airlight.reshape(-1, 3 if rgb else 1, 1, 1)
        t = torch.exp(-beta * depth)
        return clear * t + airlight * (1.0 - t)
    clear = np.asarray(clear, dtype=np.float64)
    depth = np.asarray(depth, dtype=np.float64)
    if clear.ndim != 3 or clear.shape[2] != 3 or depth.shape != clear.shape[:2]:
        raise ValueError(f"clear must be H x W x 3 and depth H x W; got {clear.shape} and {depth.shape}")
    t = np.exp(-float(beta) * depth)[..., None]
    return clear * t + np.asarray(airlight, dtype=np.float64) * (1.0 - t)


def sample_haze_params(rng: np.random.Generator,
                       airlight_range: Tuple[float, float] = AIRLIGHT_RANGE,
                       beta_range: Tuple[float, float] = BETA_RANGE) -> Tuple[float, float]:
    """Draw ``(airlight, beta)`` uniformly from the published ranges with the given generator."""
    airlight = float(rng.uniform(*airlight_range))
    beta = float(rng.uniform(*beta_range))
    return airlight, beta


def normalize_depth(depth: np.ndarray) -> np.ndarray:
    """Scale a depth map of any range to [0, 1] (a constant map becomes zeros)."""
    depth = np.asarray(depth, dtype=np.float64)
    lo, hi = float(depth.min()), float(depth.max())
    if hi - lo < 1e-12:
        return np.zeros_like(depth)
    return (depth - lo) / (hi - lo)
