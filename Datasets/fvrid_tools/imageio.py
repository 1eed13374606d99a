"""The one image writer of the dataset tools: deterministic encoding, then an atomic write."""

from pathlib import Path
from typing import Union

import cv2
import numpy as np

from rvsl.utils.errors import InputError
from rvsl.utils.io import write_bytes_atomic

JPEG_QUALITY = 95
PNG_COMPRESSION = 3


def encode_image(image_bgr: np.ndarray, ext: str = ".jpg", quality: int = JPEG_QUALITY) -> bytes:
    """Encode a uint8 BGR image by extension (``.jpg``/``.jpeg`` at ``quality``, ``.png``); same pixels, same bytes."""
    ext = ext.lower()
    params = {".jpg": [cv2.IMWRITE_JPEG_QUALITY, int(quality)], ".jpeg": [cv2.IMWRITE_JPEG_QUALITY, int(quality)],
              ".png": [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION]}.get(ext, [])
    ok, buf = cv2.imencode(ext, image_bgr, params)
    if not ok:
        raise InputError(f"cannot encode an image as '{ext}'")
    return buf.tobytes()


def rgb_to_bgr8(image: np.ndarray) -> np.ndarray:
    """RGB float image in [0, 1] to uint8 BGR, rounding half up."""
    return np.clip(image[..., ::-1] * 255.0 + 0.5, 0, 255).astype(np.uint8)


def write_image(path: Union[str, Path], image_bgr: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """Encode ``image_bgr`` by the extension of ``path`` and write it atomically; returns the bytes."""
    data = encode_image(image_bgr, Path(path).suffix, quality)
    write_bytes_atomic(path, data)
    return data
