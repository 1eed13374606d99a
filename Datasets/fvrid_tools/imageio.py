"""The dataset tools' image settings over the library's one image writer (``rvsl.utils.io``)."""

from pathlib import Path
from typing import List, Union

import cv2
import numpy as np

from rvsl.utils.io import encode_image as encode
from rvsl.utils.io import write_bytes_atomic

JPEG_QUALITY = 95
PNG_COMPRESSION = 3


def _params(ext: str, quality: int) -> List[int]:
    """OpenCV encoder settings of the tools: JPEG at ``quality``, PNG at a fixed compression."""
    return {".jpg": [cv2.IMWRITE_JPEG_QUALITY, int(quality)], ".jpeg": [cv2.IMWRITE_JPEG_QUALITY, int(quality)],
            ".png": [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION]}.get(ext.lower(), [])


def encode_image(image_bgr: np.ndarray, ext: str = ".jpg", quality: int = JPEG_QUALITY) -> bytes:
    """Encode a uint8 BGR image by extension (``.jpg``/``.jpeg`` at ``quality``, ``.png``); same pixels, same bytes."""
    return encode(image_bgr, ext, _params(ext, quality))


def rgb_to_bgr8(image: np.ndarray) -> np.ndarray:
    """RGB float image in [0, 1] to uint8 BGR, rounding half up."""
    return np.clip(image[..., ::-1] * 255.0 + 0.5, 0, 255).astype(np.uint8)


def write_image(path: Union[str, Path], image_bgr: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """Encode ``image_bgr`` by the extension of ``path`` and write it atomically; returns the bytes."""
    data = encode_image(image_bgr, Path(path).suffix, quality)
    write_bytes_atomic(path, data)
    return data
