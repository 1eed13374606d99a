"""Depth maps for haze synthesis: depth files, a pluggable monocular estimator, and a geometric fallback.

Every depth map here follows one convention: H x W float64, larger = farther, normalised to [0, 1]
(the input of :func:`rvsl.haze.synthesize`). Nothing is downloaded: an estimator runs only from
weights the user already has, through the :class:`DepthEstimator` interface.
"""

import importlib
import logging
from pathlib import Path
from typing import Callable, Optional, Protocol, Tuple, Union, runtime_checkable

import cv2
import numpy as np

from rvsl.haze.synthesis import normalize_depth
from rvsl.utils.errors import InputError

logger = logging.getLogger(__name__)


@runtime_checkable
class DepthEstimator(Protocol):
    """A monocular depth estimator: RGB uint8 H x W x 3 in, H x W depth (any scale, far = large) out.

    ``name`` is recorded in the build manifest. An estimator that predicts disparity (inverse depth,
    e.g. MiDaS-style models) must invert it, or be wrapped, so that far is large.
    """

    name: str

    def estimate(self, image: np.ndarray) -> np.ndarray:
        """Depth of one RGB uint8 image, any scale, larger = farther."""
        ...


def ground_plane_depth(height: int, width: int) -> np.ndarray:
    """The geometric fallback: a ground-plane ramp, 0 (near) at the bottom row to 1 (far) at the top.

    Not an estimate of the scene: it assumes a camera looking down a flat road, so haze thickens
    towards the top of the image. Builds that use it say so in their manifest (``ground-plane-fallback``).
    """
    if height < 1 or width < 1:
        raise ValueError(f"depth size must be positive, got {height} x {width}")
    column = np.linspace(1.0, 0.0, height) if height > 1 else np.zeros(1)
    return np.repeat(column[:, None], width, axis=1)


def fit_depth(depth: np.ndarray, shape: Tuple[int, int], disparity: bool = False, where: str = "") -> np.ndarray:
    """Normalise ``depth`` (any scale) to [0, 1] and resize it to ``shape`` (H, W), bilinearly.

    ``disparity`` marks an inverse-depth map (near = large): it is flipped to ``1 - normalised``.
    ``where`` names the map's origin in error messages.
    """
    depth = np.asarray(depth)
    if depth.ndim == 3 and 1 in (depth.shape[0], depth.shape[-1]):
        depth = depth.reshape(depth.shape[1:] if depth.shape[0] == 1 else depth.shape[:2])
    elif depth.ndim == 3 and depth.shape[-1] in (3, 4):
        depth = depth[..., 0]  # a grey map saved as colour: the channels are equal
    if depth.ndim != 2 or depth.size == 0:
        raise InputError(f"depth map must be H x W, got shape {depth.shape}" + (f": {where}" if where else ""))
    depth = depth.astype(np.float64)
    if not np.isfinite(depth).all():
        raise InputError("depth map has non-finite values" + (f": {where}" if where else ""))
    depth = normalize_depth(depth)
    if disparity:
        depth = 1.0 - depth
    if depth.shape != tuple(shape):
        depth = cv2.resize(depth, (int(shape[1]), int(shape[0])), interpolation=cv2.INTER_LINEAR)
        depth = np.clip(depth, 0.0, 1.0)
    return depth


def read_depth_file(path: Union[str, Path]) -> np.ndarray:
    """The raw array of a ``.npy`` or PNG (8- or 16-bit) depth file, unnormalised."""
    path = Path(path)
    if path.suffix.lower() == ".npy":
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise InputError(f"depth file does not load as a numpy array: {path} ({exc})") from exc
    depth = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if depth is None:
        raise InputError(f"depth file does not decode as an image: {path}")
    return depth


def load_estimator(spec: str) -> DepthEstimator:
    """Build an estimator from ``"module:attribute"``: the attribute is an estimator or a factory of one.

    The module must be importable (installed, or on ``PYTHONPATH``); its factory loads the user's
    local weights. Raises :class:`InputError` naming ``spec`` if anything is missing.
    """
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise InputError(f"depth estimator must be given as MODULE:FACTORY, got '{spec}'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InputError(f"depth estimator module '{module_name}' does not import: {exc}") from exc
    target = getattr(module, attr, None)
    if target is None:
        raise InputError(f"depth estimator: module '{module_name}' has no attribute '{attr}'")
    estimator = target if isinstance(target, DepthEstimator) else _call_factory(target, spec)
    if not isinstance(estimator, DepthEstimator):
        raise InputError(f"depth estimator '{spec}' has no 'name' and 'estimate(image)'")
    return estimator


def _call_factory(factory: Callable, spec: str) -> Optional[DepthEstimator]:
    """Call an estimator factory, turning a non-callable into an :class:`InputError`."""
    if not callable(factory):
        raise InputError(f"depth estimator '{spec}' is neither an estimator nor a factory of one")
    return factory()
