"""Haze and camera style of the demo: the synthetic twins (scattering model) and the "real" look and haze."""

from functools import lru_cache
from typing import Dict, Tuple

import cv2
import numpy as np

from rvsl import layout
from rvsl.haze import sample_haze_params, synthesize

from ..imageio import encode_image, rgb_to_bgr8
from .plan import DEFAULT_SIZE, JPEG_QUALITY_SYN, T_HAZE, T_STYLE, Job, stream
from .scenes import Camera, make_camera, render_clear, smooth_noise

def syn_haze_params(seed: int, job: Job) -> Tuple[float, float]:
    """``(airlight, beta)`` of the synthetic hazy twin of ``job``."""
    return sample_haze_params(stream(seed, job.src.code, job.pid, job.k, T_HAZE))


def real_haze(clear: np.ndarray, depth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Haze the scattering model of section 7 does not produce: uneven, tinted, blurring, flat."""
    size = clear.shape[0]
    beta = rng.uniform(0.5, 1.9) * np.exp(0.6 * smooth_noise(rng, size, int(rng.integers(2, 5))))
    tint = [(1.0, 0.95, 0.8), (0.86, 0.93, 1.0), (1.0, 0.92, 0.84), (0.95, 0.97, 0.92)][int(rng.integers(4))]
    a0 = rng.uniform(0.5, 0.92)
    rows = np.linspace(1.06, 0.9, size, dtype=np.float32)[:, None, None]          # brighter towards the sky
    airlight = np.clip(a0 * np.array(tint, np.float32)[None, None, :] * rows, 0, 1)
    t = np.exp(-beta * (0.1 + 0.9 * depth))[..., None].astype(np.float32)
    # scattering blur: the more light is scattered (the lower t), the blurrier the object
    sigma = size * rng.uniform(0.015, 0.03)
    blurred = cv2.GaussianBlur(clear, (0, 0), sigma)
    w = np.clip((1 - t) * 1.2, 0, 1)
    j = clear * (1 - w) + blurred * w
    hazy = j * t + airlight * (1 - t)
    glow = cv2.GaussianBlur(hazy, (0, 0), size * 0.05)
    hazy = 0.8 * hazy + 0.2 * glow
    gray = hazy.mean(axis=2, keepdims=True)
    hazy = gray + (hazy - gray) * rng.uniform(0.65, 0.9)                        # washed-out colour
    hazy = hazy * rng.uniform(0.85, 0.95) + rng.uniform(0.03, 0.08)             # contrast loss
    return np.clip(hazy, 0, 1).astype(np.float32)


def real_style(img: np.ndarray, cam: Camera, rng: np.random.Generator) -> np.ndarray:
    """A real camera's look: colour cast, lens blur, vignetting and sensor noise."""
    size = img.shape[0]
    out = img * np.array(cam.cast, np.float32)[None, None, :]
    out = cv2.GaussianBlur(out, (0, 0), cam.blur * size / 128 * rng.uniform(0.8, 1.25))
    out *= _vignette(size)
    noise = rng.standard_normal((size, size, 4), dtype=np.float32) * np.float32(cam.noise)
    out += noise[..., :1] + 0.5 * noise[..., 1:]                      # luminance + chroma noise
    return np.clip(out, 0, 1)


@lru_cache(maxsize=8)
def _vignette(size: int) -> np.ndarray:
    """Multiplicative lens fall-off, 1 at the centre, 0.82 in the corners."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1) - 0.5
    return (1 - 0.35 * (xx ** 2 + yy ** 2))[..., None]


def encode_jpeg(img: np.ndarray, quality: int) -> bytes:
    """RGB float image in [0, 1] to JPEG bytes (deterministic for a given libjpeg)."""
    return encode_image(rgb_to_bgr8(img), ".jpg", quality)


def render_job(seed: int, job: Job, size: int = DEFAULT_SIZE) -> Dict[str, bytes]:
    """The encoded image(s) of ``job`` by condition: clear and hazy twins (syn), clear or hazy (real)."""
    clear, depth = render_clear(seed, job, size)
    if job.src.domain == layout.SYN:
        airlight, beta = syn_haze_params(seed, job)
        hazy = synthesize(clear, depth, beta, airlight)
        return {"clear": encode_jpeg(clear, JPEG_QUALITY_SYN), "hazy": encode_jpeg(hazy, JPEG_QUALITY_SYN)}
    cam = make_camera(seed, job.src, job.cam)
    rng = stream(seed, job.src.code, job.pid, job.k, T_STYLE)
    if job.src.domain == layout.REAL_CLEAR:
        return {"clear": encode_jpeg(real_style(clear, cam, rng), cam.quality)}
    return {"hazy": encode_jpeg(real_style(real_haze(clear, depth, rng), cam, rng), cam.quality)}
