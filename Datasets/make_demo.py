"""Generate a small procedural vehicle dataset in the exact FVRID layout (DESIGN.md sections 1 and 7).

Every identity is a distinct vehicle drawn with OpenCV (type, proportions, colours, windows, wheels,
markings, roof rack) and seen by several cameras, each with its own background, viewpoint and light.

* ``FVRID_syn``: crisp renders and their hazy twins made with the atmospheric scattering model
  (``rvsl.haze.synthesize``, per-image depth, A ~ U[0.4, 1.0], beta ~ U[1.0, 5.0]).
* ``FVRID_clear``: other vehicles, rendered in a "real camera" style (colour cast, blur, sensor
  noise, lower JPEG quality).
* ``FVRID_real``: yet other vehicles, same real style, with haze the synthetic model does not make:
  spatially varying density, tinted and uneven airlight, depth-dependent scattering blur, contrast loss.

Every random draw comes from a numpy Generator seeded by (seed, source, identity or camera, image
index), so the output does not depend on the order of work and the same seed gives byte-identical
files. Run ``python Datasets/make_demo.py --help`` for the options.
"""

import argparse
import json
import logging
import multiprocessing as mp
import os
import re
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from PIL import Image

from rvsl.data.fvrid import parse_name
from rvsl.haze import normalize_depth, sample_haze_params, synthesize

logger = logging.getLogger("make_demo")

# --------------------------------------------------------------------------------------------
# Counts and sizes: every knob of the dataset's shape lives here.
# --------------------------------------------------------------------------------------------
DEFAULT_SIZE = 128            # output images are SIZE x SIZE
DEFAULT_SEED = 0
SUPERSAMPLE = 2               # scenes are drawn at SUPERSAMPLE x SIZE, then area-downsampled
N_CAMERAS = 6                 # cameras per source
CAMS_PER_ID = (3, 4)          # an identity is seen by this many cameras (inclusive range)
TRAIN_IMAGES = (4, 6)         # images per training identity
QUERY_IMAGES = (1, 2)         # query images per test identity
GALLERY_IMAGES = (3, 5)       # gallery images per test identity
JPEG_QUALITY_SYN = 95         # synthetic renders are clean
JPEG_QUALITY_REAL = (68, 86)  # "real" cameras compress harder (per camera)
MARKER = ".make_demo.json"    # written in DIR: marks a dataset made by this script


@dataclass(frozen=True)
class Source:
    """One FVRID source: its root folder, the sub-folders it has and its identity/camera ranges."""

    key: str
    root: str
    code: int                 # seeds: keeps the sources' random streams apart
    kinds: Tuple[str, ...]    # "clear" and/or "foggy" sub-folders per split
    train_ids: int
    test_ids: int
    train_pid0: int           # first training identity
    test_pid0: int            # first query/gallery identity
    cam0: int                 # first camera number


SOURCES: Tuple[Source, ...] = (
    Source("syn", "FVRID_syn", 1, ("clear", "foggy"), 60, 20, 1, 1001, 1),
    Source("clear", "FVRID_clear", 2, ("clear",), 60, 20, 20001, 21001, 101),
    Source("real", "FVRID_real", 3, ("foggy",), 60, 20, 30001, 31001, 201),
)
SPLITS = ("train", "query", "gallery")

# Seed tags: the second-to-last word of every seed sequence says what the stream is for.
_T_VEHICLE, _T_PLAN, _T_CAMERA, _T_IMAGE, _T_HAZE, _T_STYLE = 11, 12, 13, 14, 15, 16


def folders() -> List[Tuple[Source, str, str]]:
    """The twelve ``(source, split, kind)`` folders, as ``DIR/<root>/<split>_<kind>``."""
    return [(src, split, kind) for src in SOURCES for split in SPLITS for kind in src.kinds]


def folder_path(out: Path, src: Source, split: str, kind: str) -> Path:
    """Path of one of the twelve folders."""
    return out / src.root / f"{split}_{kind}"


def _rng(seed: int, *keys: int) -> np.random.Generator:
    """A Generator determined only by ``seed`` and the integer ``keys``."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), *[int(k) for k in keys]]))


# --------------------------------------------------------------------------------------------
# The plan: which image (identity, camera, index) goes to which folder.
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Job:
    """One image to render: its source, split, identity, camera and index within the identity."""

    src: Source
    split: str
    pid: int
    cam: int
    k: int
    frame: int

    @property
    def name(self) -> str:
        """VeRi-Wild style file name ``PPPPP_cCCC_FFFFFF_K.jpg``."""
        return f"{self.pid:05d}_c{self.cam:03d}_{self.frame:06d}_{self.k}.jpg"


def _scaled(n: int, scale: float) -> int:
    """An identity count scaled by ``scale`` (at least 3, so every split stays usable)."""
    return max(3, int(round(n * scale)))


def plan_identity(seed: int, src: Source, pid: int, test: bool) -> List[Job]:
    """The images of one identity: training images, or query then gallery images."""
    rng = _rng(seed, src.code, pid, _T_PLAN)
    n_cams = int(rng.integers(CAMS_PER_ID[0], CAMS_PER_ID[1] + 1))
    cams = [src.cam0 + int(c) for c in rng.choice(N_CAMERAS, size=n_cams, replace=False)]
    if test:
        n_query = int(rng.integers(QUERY_IMAGES[0], QUERY_IMAGES[1] + 1))
        n_gallery = int(rng.integers(GALLERY_IMAGES[0], GALLERY_IMAGES[1] + 1))
        # queries come from cams[0] (and cams[1]); the gallery cycles from cams[1] on, so it holds
        # cams[1] and cams[2] at least: every query keeps a match from another camera
        slots = [("query", cams[min(i, 1)]) for i in range(n_query)]
        slots += [("gallery", cams[(1 + i) % n_cams]) for i in range(n_gallery)]
    else:
        n_img = int(rng.integers(TRAIN_IMAGES[0], TRAIN_IMAGES[1] + 1))
        slots = [("train", cams[i % n_cams]) for i in range(n_img)]
    frames = np.sort(rng.choice(999_999, size=len(slots), replace=False) + 1)
    return [Job(src, split, pid, cam, k, int(frames[k])) for k, (split, cam) in enumerate(slots)]


def build_plan(seed: int, scale: float = 1.0) -> List[Job]:
    """Every image of the dataset (all sources and splits), in a fixed order."""
    jobs: List[Job] = []
    for src in SOURCES:
        for i in range(_scaled(src.train_ids, scale)):
            jobs += plan_identity(seed, src, src.train_pid0 + i, test=False)
        for i in range(_scaled(src.test_ids, scale)):
            jobs += plan_identity(seed, src, src.test_pid0 + i, test=True)
    return jobs


# --------------------------------------------------------------------------------------------
# Vehicles.
# --------------------------------------------------------------------------------------------
PX_PER_M = 48           # texture resolution
HEADROOM = 1.14         # texture height = vehicle height x HEADROOM (room for a roof box)

# Side profile per body type, lengths normalised front (0) to rear (1), heights to the roof (1):
# windshield base xa / top xb, roof end xc, rear-window base xd, belt line, nose height, wheels.
KINDS: Dict[str, Dict[str, object]] = {
    "sedan": dict(L=(4.4, 4.9), W=(1.75, 1.85), H=(1.40, 1.50), xa=0.30, xb=0.43, xc=0.70, xd=0.84,
                  belt=0.56, nose=0.50, wf=0.17, wr=0.81, r=(0.30, 0.34)),
    "hatch": dict(L=(3.8, 4.2), W=(1.70, 1.80), H=(1.45, 1.55), xa=0.28, xb=0.42, xc=0.87, xd=0.97,
                  belt=0.55, nose=0.48, wf=0.16, wr=0.83, r=(0.29, 0.32)),
    "coupe": dict(L=(4.3, 4.6), W=(1.80, 1.90), H=(1.25, 1.35), xa=0.35, xb=0.50, xc=0.64, xd=0.90,
                  belt=0.58, nose=0.42, wf=0.17, wr=0.80, r=(0.32, 0.36)),
    "suv": dict(L=(4.5, 4.9), W=(1.85, 1.95), H=(1.70, 1.80), xa=0.26, xb=0.35, xc=0.93, xd=0.99,
                belt=0.56, nose=0.55, wf=0.17, wr=0.81, r=(0.36, 0.40)),
    "pickup": dict(L=(5.2, 5.5), W=(1.90, 2.00), H=(1.80, 1.90), xa=0.26, xb=0.33, xc=0.52, xd=0.535,
                   belt=0.60, nose=0.58, wf=0.16, wr=0.79, r=(0.37, 0.41)),
    "van": dict(L=(4.8, 5.2), W=(1.90, 2.00), H=(1.95, 2.10), xa=0.11, xb=0.21, xc=0.985, xd=1.0,
                belt=0.50, nose=0.44, wf=0.14, wr=0.82, r=(0.32, 0.35)),
    "truck": dict(L=(6.0, 7.0), W=(2.20, 2.40), H=(2.80, 3.10), xa=0.0, xb=0.0, xc=0.23, xd=0.23,
                  belt=0.46, nose=0.40, wf=0.12, wr=0.79, r=(0.45, 0.50)),
}
KIND_WEIGHTS = {"sedan": 0.24, "hatch": 0.16, "coupe": 0.08, "suv": 0.2, "pickup": 0.1, "van": 0.12,
                "truck": 0.1}

# Body colours (RGB 0-255) with their frequency: greys dominate, as on real roads.
PALETTE = [
    ((232, 232, 228), 0.16), ((180, 183, 188), 0.13), ((105, 108, 114), 0.11), ((22, 22, 25), 0.13),
    ((180, 24, 26), 0.07), ((110, 14, 22), 0.04), ((30, 64, 160), 0.07), ((20, 30, 72), 0.05),
    ((120, 170, 215), 0.03), ((36, 110, 52), 0.04), ((18, 58, 38), 0.02), ((238, 198, 40), 0.03),
    ((236, 120, 24), 0.03), ((176, 150, 112), 0.04), ((30, 130, 130), 0.02), ((96, 44, 120), 0.02),
    ((150, 90, 50), 0.01),
]
WINDOWS = [(38, 48, 62), (22, 26, 30), (60, 86, 100), (70, 95, 78), (95, 110, 130), (48, 40, 55)]
RIMS = [(200, 200, 205), (60, 60, 64), (170, 140, 70), (140, 142, 150), (25, 25, 28)]
MARKINGS = ("none", "none", "none", "none", "stripe", "double", "lower", "racing", "logo", "flame")
RACKS = ("none", "none", "none", "rails", "box")


@dataclass(frozen=True)
class Vehicle:
    """Everything that makes one identity look like itself."""

    kind: str
    length: float
    width: float
    height: float
    body: Tuple[int, int, int]
    roof: Tuple[int, int, int]
    window: Tuple[int, int, int]
    trim: Tuple[int, int, int]
    rim: Tuple[int, int, int]
    rim_ratio: float
    wheel_r: float
    n_windows: int
    dark_pillars: bool
    marking: str
    mark: Tuple[int, int, int]
    mark2: Tuple[int, int, int]
    rack: str
    rack_color: Tuple[int, int, int]
    cargo: Tuple[int, int, int]
    light_shape: int
    tail_shape: int
    grille: int
    grille_color: Tuple[int, int, int]
    plate: Tuple[int, int, int]


def _jitter(rng: np.random.Generator, color: Sequence[int], amount: float = 12) -> Tuple[int, int, int]:
    """A colour moved by a small random offset per channel."""
    c = np.clip(np.asarray(color, float) + rng.uniform(-amount, amount, 3), 0, 255)
    return tuple(int(v) for v in c)  # type: ignore[return-value]


def _pick_color(rng: np.random.Generator, exclude: Optional[Tuple[int, int, int]] = None) -> Tuple[int, int, int]:
    """A body colour drawn from the palette by frequency (optionally not close to ``exclude``)."""
    colors = [c for c, _ in PALETTE]
    p = np.array([w for _, w in PALETTE], float)
    if exclude is not None:
        far = np.array([np.abs(np.subtract(c, exclude)).sum() > 120 for c in colors])
        p = p * far
    idx = int(rng.choice(len(colors), p=p / p.sum()))
    return _jitter(rng, colors[idx])


def make_vehicle(seed: int, src: Source, pid: int) -> Vehicle:
    """Draw the appearance of identity ``pid`` of source ``src``."""
    rng = _rng(seed, src.code, pid, _T_VEHICLE)
    kinds, weights = list(KIND_WEIGHTS), np.array(list(KIND_WEIGHTS.values()))
    kind = kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]
    g = KINDS[kind]
    body = _pick_color(rng)
    two_tone = rng.random() < 0.18
    roof = _pick_color(rng, exclude=body) if two_tone else body
    plastic = rng.random() < 0.4
    trim = _jitter(rng, (30, 30, 32), 8) if plastic else _shade(body, 0.9)
    marking = str(rng.choice(MARKINGS))
    if kind in ("van", "truck") and rng.random() < 0.5:
        marking = "logo"
    rack = str(rng.choice(RACKS)) if kind not in ("truck", "coupe") else "none"
    cargo = _jitter(rng, (236, 236, 232)) if rng.random() < 0.55 else _pick_color(rng, exclude=body)
    return Vehicle(
        kind=kind,
        length=float(rng.uniform(*g["L"])), width=float(rng.uniform(*g["W"])), height=float(rng.uniform(*g["H"])),
        body=body, roof=roof,
        window=_jitter(rng, WINDOWS[int(rng.integers(len(WINDOWS)))], 8),
        trim=trim,
        rim=_jitter(rng, RIMS[int(rng.integers(len(RIMS)))], 6),
        rim_ratio=float(rng.uniform(0.5, 0.72)),
        wheel_r=float(rng.uniform(*g["r"])),
        n_windows=int(rng.integers(1, 3 if kind in ("pickup", "coupe") else 4)),
        dark_pillars=bool(rng.random() < 0.5),
        marking=marking,
        mark=_pick_color(rng, exclude=body),
        mark2=_pick_color(rng, exclude=body),
        rack=rack,
        rack_color=_jitter(rng, [(20, 20, 22), (60, 60, 64), (220, 220, 220)][int(rng.integers(3))], 6),
        cargo=cargo,
        light_shape=int(rng.integers(3)),
        tail_shape=int(rng.integers(3)),
        grille=int(rng.integers(3)),
        grille_color=_jitter(rng, [(18, 18, 20), (175, 178, 182), _shade(body, 0.7)][int(rng.integers(3))], 6),
        plate=(235, 235, 230) if rng.random() < 0.7 else (236, 200, 40),
    )


class _Canvas:
    """An RGBA drawing surface in vehicle units: u across (0..1), v up from the ground (0..1 = roof)."""

    SHIFT = 4  # sub-pixel precision of cv2 drawing

    def __init__(self, width_m: float, height_m: float, px: float = PX_PER_M) -> None:
        self.w = max(8, int(round(width_m * px)))
        self.h = max(8, int(round(height_m * HEADROOM * px)))
        self.height_px = height_m * px          # pixels per unit of v
        self.rgb = np.zeros((self.h, self.w, 3), np.uint8)
        self.alpha = np.zeros((self.h, self.w), np.uint8)

    def pt(self, u: float, v: float) -> Tuple[int, int]:
        """Fixed-point pixel coordinates of (u, v)."""
        x = u * (self.w - 1)
        y = (self.h - 1) - v * self.height_px
        return int(round(x * 16)), int(round(y * 16))

    def poly(self, pts: Sequence[Tuple[float, float]], color: Sequence[int], opaque: bool = True) -> None:
        """Fill a polygon given in (u, v)."""
        arr = np.array([self.pt(u, v) for u, v in pts], np.int32)
        cv2.fillPoly(self.rgb, [arr], tuple(int(c) for c in color), cv2.LINE_AA, self.SHIFT)
        if opaque:
            cv2.fillPoly(self.alpha, [arr], 255, cv2.LINE_AA, self.SHIFT)

    def rect(self, u0: float, v0: float, u1: float, v1: float, color: Sequence[int], opaque: bool = True) -> None:
        """Fill an axis-aligned rectangle."""
        self.poly([(u0, v0), (u1, v0), (u1, v1), (u0, v1)], color, opaque)

    def ellipse(self, u: float, v: float, ru: float, rv: float, color: Sequence[int], opaque: bool = True) -> None:
        """Fill an ellipse with radii ``ru`` (in u) and ``rv`` (in v)."""
        c = self.pt(u, v)
        axes = (max(1, int(round(ru * (self.w - 1) * 16))), max(1, int(round(rv * self.height_px * 16))))
        cv2.ellipse(self.rgb, c, axes, 0, 0, 360, tuple(int(x) for x in color), -1, cv2.LINE_AA, self.SHIFT)
        if opaque:
            cv2.ellipse(self.alpha, c, axes, 0, 0, 360, 255, -1, cv2.LINE_AA, self.SHIFT)

    def line(self, u0: float, v0: float, u1: float, v1: float, color: Sequence[int], thick: float) -> None:
        """Draw a line ``thick`` pixels wide (colour only, inside the silhouette)."""
        cv2.line(self.rgb, self.pt(u0, v0), self.pt(u1, v1), tuple(int(c) for c in color),
                 max(1, int(round(thick))), cv2.LINE_AA, self.SHIFT)

    def rgba(self) -> np.ndarray:
        """The drawing as float32 H x W x 4 in [0, 1]."""
        return np.dstack([self.rgb, self.alpha]).astype(np.float32) / 255.0


def _shade(color: Sequence[int], f: float) -> Tuple[int, int, int]:
    """``color`` scaled by ``f`` (darker below 1, lighter above)."""
    return tuple(int(np.clip(c * f + (f - 1) * 40 * (f > 1), 0, 255)) for c in color)  # type: ignore[return-value]


def _side(v: Vehicle) -> np.ndarray:
    """Side view, front on the left, as RGBA float32."""
    g = KINDS[v.kind]
    cv_ = _Canvas(v.length, v.height)
    r = v.wheel_r / v.height
    bot = r * 0.8
    ru = v.wheel_r / v.length
    belt, nose = float(g["belt"]), float(g["nose"])
    xa, xb, xc, xd = (float(g[k]) for k in ("xa", "xb", "xc", "xd"))
    wheels = [float(g["wf"]), float(g["wr"])]
    dark = (14, 14, 16)
    for wu in wheels:  # wheel wells
        cv_.ellipse(wu, r, ru * 1.18, r * 1.18, dark)
    if v.kind == "truck":
        cv_.rect(0.2, bot - 0.02, 1.0, bot + 0.05, (35, 35, 38))                     # chassis
        cv_.rect(0.245, bot + 0.04, 1.0, 1.0, v.cargo)                               # cargo box
        cv_.line(0.245, 0.99, 1.0, 0.99, _shade(v.cargo, 0.8), 2)
        cv_.poly([(0.0, bot), (0.0, 0.62), (0.03, 0.72), (0.225, 0.74), (0.225, bot)], v.body)
        cv_.poly([(0.025, 0.47), (0.03, 0.66), (0.16, 0.68), (0.16, 0.47)], v.window)
        cv_.line(0.17, bot + 0.04, 0.17, 0.66, _shade(v.body, 0.6), 2)
        cv_.rect(0.0, bot, 0.06, bot + 0.06, v.trim)
        cv_.rect(0.0, 0.3, 0.025, 0.36, (245, 240, 215))
        _box_marking(cv_, v, 0.245, 1.0, bot + 0.04, 1.0)
        cv_.rect(0.985, bot + 0.07, 1.0, bot + 0.13, (200, 20, 20))
    else:
        pts = [(0.0, bot + 0.05), (0.0, nose - 0.06), (0.02, nose), (xa, belt), (xb, 1.0), (xc, 1.0)]
        if xd >= 0.98:
            pts += [(0.997, 0.97), (1.0, bot + 0.05)]
        else:
            pts += [(xd, belt + 0.02), (0.985, belt - 0.01), (1.0, belt - 0.07), (1.0, bot + 0.05)]
        pts += [(0.985, bot), (0.015, bot)]
        cv_.poly(pts, v.body)
        if v.marking == "lower":
            cv_.poly([(0.0, bot + 0.05), (0.0, bot + 0.16), (1.0, bot + 0.16), (1.0, bot + 0.05),
                      (0.985, bot), (0.015, bot)], v.mark)
        # glass
        vb, vt = belt + 0.045, 0.93
        def xf(h: float) -> float:
            return xa + (xb - xa) * (h - belt) / (1 - belt)
        def xr(h: float) -> float:
            return xd + (xc - xd) * (h - belt) / (1 - belt)
        if v.roof != v.body:
            cv_.poly([(xf(vt) - 0.01, vt), (xb, 1.0), (xc, 1.0), (xr(vt) + 0.01, vt)], v.roof)
        g0, g1 = xf(vb) + 0.02, xr(vb) - 0.02
        t0, t1 = xf(vt) + 0.02, xr(vt) - 0.02
        if v.kind == "van" and v.n_windows == 1:
            g1 = t1 = 0.36
        cv_.poly([(g0, vb), (t0, vt), (t1, vt), (g1, vb)], v.window)
        cv_.poly([(t0 + 0.02, vt - 0.02), (t0 + 0.06, vt - 0.02), (g0 + 0.05, vb + 0.02), (g0 + 0.02, vb + 0.02)],
                 _shade(v.window, 1.5))  # reflection
        pillar = dark if v.dark_pillars else v.body
        n = v.n_windows
        doors = []
        for i in range(1, n):
            f = i / n
            ub, ut = g0 + (g1 - g0) * f, t0 + (t1 - t0) * f
            cv_.poly([(ub - 0.012, vb), (ut - 0.012, vt), (ut + 0.012, vt), (ub + 0.012, vb)], pillar)
            doors.append(ub)
        # door seams and handles
        seam = _shade(v.body, 0.55)
        for ub in [g0 - 0.01] + doors:
            cv_.line(ub, vb, ub, bot + 0.06, seam, 1.5)
            cv_.rect(ub + 0.03, belt - 0.07, ub + 0.07, belt - 0.05, _shade(v.body, 0.7))
        if v.kind == "pickup":
            cv_.line(xd + 0.01, belt + 0.01, 0.99, belt + 0.01, _shade(v.body, 0.6), 2)
        cv_.poly([(xa + 0.005, belt + 0.01), (xa + 0.03, belt + 0.01), (xa + 0.03, belt + 0.08),
                  (xa + 0.01, belt + 0.06)], dark if v.dark_pillars else v.body)   # mirror
        # lights and bumpers
        cv_.rect(0.0, bot + 0.02, 0.07, bot + 0.13, v.trim)
        cv_.rect(0.93, bot + 0.02, 1.0, bot + 0.13, v.trim)
        cv_.poly([(0.002, nose - 0.13), (0.003, nose - 0.05), (0.04, nose - 0.03), (0.05, nose - 0.12)],
                 (240, 238, 215))
        tail_top = belt - 0.03 if xd < 0.98 else 0.62
        cv_.rect(0.975, tail_top - 0.12, 1.0, tail_top, (190, 18, 20))
        _side_marking(cv_, v, bot, belt, xf, xr, vt)
        # roof rack
        if v.rack == "rails":
            cv_.rect(xb + 0.03, 1.0, xc - 0.03, 1.035, v.rack_color)
            for u in (xb + 0.05, xc - 0.06):
                cv_.rect(u, 0.99, u + 0.015, 1.04, v.rack_color)
        elif v.rack == "box":
            cv_.poly([(xb + 0.06, 1.0), (xb + 0.08, 1.1), (xc - 0.06, 1.1), (xc - 0.03, 1.0)], v.rack_color)
    for wu in wheels:
        cv_.ellipse(wu, r, ru, r, (24, 24, 26))
        cv_.ellipse(wu, r, ru * v.rim_ratio, r * v.rim_ratio, v.rim)
        cv_.ellipse(wu, r, ru * 0.18, r * 0.18, _shade(v.rim, 0.5))
    return cv_.rgba()


def _side_marking(cv_: _Canvas, v: Vehicle, bot: float, belt: float, xf: Callable[[float], float],
                  xr: Callable[[float], float], vt: float) -> None:
    """Stripes, racing lines, logo or flame decal on the side of a car."""
    mid = bot + (belt - bot) * 0.55
    if v.marking == "stripe":
        cv_.rect(0.02, mid - 0.035, 0.98, mid + 0.035, v.mark, opaque=False)
    elif v.marking == "double":
        cv_.rect(0.02, mid + 0.01, 0.98, mid + 0.04, v.mark, opaque=False)
        cv_.rect(0.02, mid - 0.05, 0.98, mid - 0.02, v.mark, opaque=False)
    elif v.marking == "racing":
        cv_.rect(0.03, belt - 0.04, xf(belt) - 0.005, belt - 0.01, v.mark, opaque=False)
        cv_.rect(xf(vt), 0.985, xr(vt), 1.0, v.mark, opaque=False)
    elif v.marking == "logo":
        u0 = 0.42 if v.kind != "van" else 0.45
        cv_.rect(u0, bot + 0.1, u0 + 0.3, belt - 0.03 if v.kind != "van" else 0.8, v.mark, opaque=False)
        cv_.ellipse(u0 + 0.15, (bot + belt) / 2 + (0.1 if v.kind == "van" else 0), 0.06, 0.08, v.mark2, opaque=False)
    elif v.marking == "flame":
        cv_.poly([(0.05, mid - 0.07), (0.35, mid - 0.02), (0.22, mid + 0.02), (0.5, mid + 0.07),
                  (0.3, mid + 0.09), (0.05, mid + 0.05)], v.mark, opaque=False)


def _box_marking(cv_: _Canvas, v: Vehicle, u0: float, u1: float, v0: float, v1: float) -> None:
    """Livery on a truck's cargo box."""
    h = v1 - v0
    if v.marking in ("stripe", "double", "racing"):
        cv_.rect(u0 + 0.01, v0 + 0.35 * h, u1 - 0.01, v0 + 0.45 * h, v.mark)
        if v.marking == "double":
            cv_.rect(u0 + 0.01, v0 + 0.52 * h, u1 - 0.01, v0 + 0.58 * h, v.mark2)
    elif v.marking == "lower":
        cv_.rect(u0, v0, u1, v0 + 0.25 * h, v.mark)
    elif v.marking in ("logo", "flame"):
        cv_.rect(u0 + 0.08, v0 + 0.25 * h, u0 + 0.55, v0 + 0.8 * h, v.mark)
        cv_.ellipse(u0 + 0.32, v0 + 0.52 * h, 0.08, 0.18 * h, v.mark2)


def _end(v: Vehicle, front: bool) -> np.ndarray:
    """Front or rear view as RGBA float32 (canvas a bit wider than the body, for mirrors)."""
    g = KINDS[v.kind]
    cv_ = _Canvas(v.width * 1.1, v.height)
    r = v.wheel_r / v.height
    bot = r * 0.8
    belt, nose = float(g["belt"]), float(g["nose"])
    a, b = 0.05, 0.95                      # body edges
    dark = (14, 14, 16)
    cv_.rect(0.07, 0.0, 0.2, bot + 0.06, (24, 24, 26))
    cv_.rect(0.8, 0.0, 0.93, bot + 0.06, (24, 24, 26))
    if v.kind == "truck":
        cv_.rect(a, 0.7, b, 1.0, v.cargo)
        if front:
            cv_.poly([(a + 0.02, bot), (a + 0.02, 0.7), (a + 0.05, 0.74), (b - 0.05, 0.74), (b - 0.02, 0.7),
                      (b - 0.02, bot)], v.body)
            cv_.rect(a + 0.07, 0.47, b - 0.07, 0.69, v.window)
            cv_.rect(0.34, bot + 0.1, 0.66, 0.38, v.grille_color)
            for k in range(5):
                cv_.line(0.35, bot + 0.13 + k * 0.045, 0.65, bot + 0.13 + k * 0.045, _shade(v.grille_color, 0.5), 1.5)
            _lights(cv_, v.light_shape, 0.3, (245, 240, 215), a + 0.04)
            cv_.rect(a + 0.02, bot, b - 0.02, bot + 0.07, v.trim)
            cv_.rect(0.42, bot + 0.015, 0.58, bot + 0.06, v.plate)
            cv_.rect(0.0, 0.5, a + 0.02, 0.62, dark)
            cv_.rect(b - 0.02, 0.5, 1.0, 0.62, dark)
            if v.marking in ("stripe", "double", "racing"):
                cv_.rect(a, 0.85, b, 0.9, v.mark)
        else:
            cv_.rect(a, bot + 0.04, b, 1.0, v.cargo)
            cv_.line(0.5, bot + 0.06, 0.5, 0.98, _shade(v.cargo, 0.6), 2)
            for u in (0.3, 0.7):
                cv_.line(u, bot + 0.1, u, 0.9, _shade(v.cargo, 0.75), 1.5)
            cv_.rect(a, bot, b, bot + 0.05, (35, 35, 38))
            cv_.rect(a + 0.01, bot + 0.06, a + 0.09, bot + 0.12, (200, 20, 20))
            cv_.rect(b - 0.09, bot + 0.06, b - 0.01, bot + 0.12, (200, 20, 20))
            cv_.rect(0.42, bot + 0.01, 0.58, bot + 0.045, v.plate)
            if v.marking in ("stripe", "double", "racing", "lower"):
                cv_.rect(a, bot + 0.25, b, bot + 0.3, v.mark)
        return cv_.rgba()
    boxy = v.kind in ("van", "suv")
    top_in = 0.09 if boxy else 0.15
    cv_.poly([(a, bot + 0.04), (a, nose - 0.04), (a + 0.02, belt), (b - 0.02, belt), (b, nose - 0.04),
              (b, bot + 0.04), (b - 0.03, bot), (a + 0.03, bot)], v.body)
    cabin = [(a + 0.03, belt), (a + top_in, 1.0), (b - top_in, 1.0), (b - 0.03, belt)]
    cv_.poly(cabin, v.roof if v.roof != v.body else v.body)
    if v.roof != v.body:
        cv_.poly([(a + 0.03, belt), (a + top_in - 0.01, 0.94), (b - top_in + 0.01, 0.94), (b - 0.03, belt)], v.body)
    glass_top = 0.92
    gi = 0.04 if front else 0.09
    cv_.poly([(a + 0.05 + (gi - 0.04), belt + 0.04), (a + top_in + 0.01 + gi * 0.6, glass_top),
              (b - top_in - 0.01 - gi * 0.6, glass_top), (b - 0.05 - (gi - 0.04), belt + 0.04)], v.window)
    cv_.poly([(0.3, belt + 0.06), (0.42, glass_top - 0.02), (0.48, glass_top - 0.02), (0.36, belt + 0.06)],
             _shade(v.window, 1.5))
    cv_.rect(0.0, belt, a + 0.02, belt + 0.07, dark if v.dark_pillars else v.body)     # mirrors
    cv_.rect(b - 0.02, belt, 1.0, belt + 0.07, dark if v.dark_pillars else v.body)
    if v.marking == "lower":
        cv_.rect(a, bot + 0.04, b, bot + 0.14, v.mark)
    elif v.marking in ("stripe", "double", "flame"):
        mid = bot + (belt - bot) * 0.55
        cv_.rect(a, mid - 0.025, a + 0.05, mid + 0.025, v.mark)
        cv_.rect(b - 0.05, mid - 0.025, b, mid + 0.025, v.mark)
    elif v.marking == "racing":
        for u in (0.39, 0.54):
            cv_.rect(u, bot + 0.12, u + 0.07, belt, v.mark)
            cv_.rect(u + 0.01, glass_top + 0.005, u + 0.06, 1.0, v.mark)
    if front:
        cv_.rect(a + 0.01, bot, b - 0.01, bot + 0.1, v.trim)
        if v.grille == 0:
            cv_.rect(0.33, bot + 0.11, 0.67, nose - 0.05, v.grille_color)
            for k in range(4):
                h = bot + 0.13 + k * (nose - 0.08 - bot - 0.11) / 4
                cv_.line(0.34, h, 0.66, h, _shade(v.grille_color, 0.45), 1.2)
        elif v.grille == 1:
            cv_.rect(0.25, bot + 0.02, 0.75, bot + 0.12, _shade(v.grille_color, 0.6))
            cv_.rect(0.36, nose - 0.1, 0.64, nose - 0.05, v.grille_color)
        else:
            cv_.rect(0.38, bot + 0.11, 0.48, nose - 0.04, v.grille_color)
            cv_.rect(0.52, bot + 0.11, 0.62, nose - 0.04, v.grille_color)
        cv_.rect(0.42, bot + 0.02, 0.58, bot + 0.08, v.plate)
        _lights(cv_, v.light_shape, nose - 0.03, (245, 242, 220), a + 0.03)
    else:
        cv_.rect(a + 0.01, bot, b - 0.01, bot + 0.12, v.trim)
        cv_.rect(0.4, bot + 0.13, 0.6, bot + 0.21, v.plate)
        red = (195, 20, 22)
        if v.tail_shape == 0:
            cv_.rect(a + 0.01, belt - 0.15, a + 0.15, belt - 0.03, red)
            cv_.rect(b - 0.15, belt - 0.15, b - 0.01, belt - 0.03, red)
        elif v.tail_shape == 1:
            cv_.rect(a + 0.01, belt - 0.1, b - 0.01, belt - 0.05, red)
            cv_.rect(a + 0.01, belt - 0.14, a + 0.12, belt - 0.05, red)
            cv_.rect(b - 0.12, belt - 0.14, b - 0.01, belt - 0.05, red)
        else:
            for u in (a + 0.07, a + 0.17, b - 0.17, b - 0.07):
                cv_.ellipse(u, belt - 0.09, 0.04, 0.045, red)
        if v.kind == "pickup":
            cv_.line(a + 0.05, belt - 0.02, b - 0.05, belt - 0.02, _shade(v.body, 0.6), 1.5)
        if v.kind == "van":
            cv_.line(0.5, bot + 0.12, 0.5, glass_top, _shade(v.body, 0.5), 2)
    if v.rack == "rails":
        cv_.rect(a + top_in, 1.0, a + top_in + 0.04, 1.04, v.rack_color)
        cv_.rect(b - top_in - 0.04, 1.0, b - top_in, 1.04, v.rack_color)
    elif v.rack == "box":
        cv_.poly([(0.28, 1.0), (0.3, 1.1), (0.7, 1.1), (0.72, 1.0)], v.rack_color)
    return cv_.rgba()


def _lights(cv_: _Canvas, shape: int, top: float, color: Tuple[int, int, int], edge: float) -> None:
    """Pair of head lamps in one of three shapes, mirrored about the centre."""
    for left in (True, False):
        def u(x: float) -> float:
            return x if left else 1.0 - x
        if shape == 0:
            cv_.poly([(u(edge), top - 0.08), (u(edge), top), (u(edge + 0.2), top), (u(edge + 0.2), top - 0.08)], color)
        elif shape == 1:
            cv_.ellipse(u(edge + 0.09), top - 0.045, 0.065, 0.05, color)
        else:
            cv_.poly([(u(edge), top - 0.05), (u(edge), top), (u(edge + 0.24), top - 0.01),
                      (u(edge + 0.22), top - 0.04)], color)


@lru_cache(maxsize=512)
def vehicle_textures(seed: int, src: Source, pid: int) -> Tuple[Vehicle, np.ndarray, np.ndarray, np.ndarray]:
    """The vehicle of an identity and its side, front and rear textures (cached)."""
    v = make_vehicle(seed, src, pid)
    return v, _side(v), _end(v, True), _end(v, False)


# --------------------------------------------------------------------------------------------
# Cameras and scenes.
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Camera:
    """The fixed look of one camera: background, viewpoint, light and (for real sources) style."""

    horizon: float
    sky: Tuple[Tuple[float, float, float], Tuple[float, float, float]]
    road: Tuple[float, float, float]
    lane: Tuple[float, float, float]
    buildings: Tuple[Tuple[float, ...], ...]
    trees: Tuple[Tuple[float, ...], ...]
    yaw: float
    gain: Tuple[float, float, float]
    brightness: float
    cast: Tuple[float, float, float]
    blur: float
    noise: float
    quality: int


YAWS = (25.0, 65.0, 90.0, 120.0, 155.0, 0.0, 180.0, -30.0, -90.0, -140.0)


@lru_cache(maxsize=256)
def make_camera(seed: int, src: Source, cam: int) -> Camera:
    """Draw the look of camera ``cam`` of source ``src``."""
    rng = _rng(seed, src.code, cam, _T_CAMERA)
    overcast = rng.random() < 0.4
    if overcast:
        top = tuple(rng.uniform(0.62, 0.78) + rng.uniform(-0.03, 0.03, 3))
        bottom = tuple(np.clip(np.array(top) + 0.1, 0, 1))
    else:
        top = (rng.uniform(0.25, 0.45), rng.uniform(0.45, 0.62), rng.uniform(0.75, 0.95))
        bottom = (rng.uniform(0.7, 0.85), rng.uniform(0.78, 0.9), rng.uniform(0.88, 0.98))
    buildings = []
    x = -0.1
    while x < 1.1:
        w = rng.uniform(0.12, 0.35)
        tone = rng.uniform(0.35, 0.8)
        col = np.clip(tone + rng.uniform(-0.08, 0.08, 3) + np.array([0.05, 0.02, -0.03]) * rng.uniform(-1, 2), 0, 1)
        buildings.append((x, w, rng.uniform(0.15, 0.55), *col, rng.uniform(0.55, 0.9), float(rng.random() < 0.7)))
        x += w + rng.uniform(-0.03, 0.08)
    trees = tuple((rng.uniform(0, 1), rng.uniform(0.04, 0.1), rng.uniform(0.15, 0.3), rng.uniform(0.3, 0.5),
                   rng.uniform(0.12, 0.25)) for _ in range(int(rng.integers(0, 4))))
    road_tone = rng.uniform(0.28, 0.5)
    lane = (0.95, 0.95, 0.92) if rng.random() < 0.7 else (0.95, 0.8, 0.2)
    cast_kind = rng.integers(3)
    cast = [(1.08, 1.0, 0.86), (0.9, 0.98, 1.1), (1.0, 1.06, 0.92)][int(cast_kind)]
    return Camera(
        horizon=float(rng.uniform(0.28, 0.5)),
        sky=(top, bottom),  # type: ignore[arg-type]
        road=tuple(np.clip(road_tone + rng.uniform(-0.03, 0.03, 3), 0, 1)),  # type: ignore[arg-type]
        lane=lane,
        buildings=tuple(tuple(float(x) for x in b) for b in buildings),
        trees=trees,
        yaw=float(YAWS[int(rng.integers(len(YAWS)))] + rng.uniform(-10, 10)),
        gain=tuple(1.0 + rng.uniform(-0.06, 0.06, 3)),  # type: ignore[arg-type]
        brightness=float(rng.uniform(0.8, 1.1)),
        cast=tuple(np.array(cast) * (1 + rng.uniform(-0.03, 0.03, 3))),  # type: ignore[arg-type]
        blur=float(rng.uniform(0.5, 1.1)),
        noise=float(rng.uniform(0.012, 0.03)),
        quality=int(rng.integers(JPEG_QUALITY_REAL[0], JPEG_QUALITY_REAL[1] + 1)),
    )


Z_NEAR, Z_FAR, CAM_HEIGHT = 3.0, 200.0, 5.0


_PAD = 0.05  # camera layers have this much extra sky/road above and below (for the tilt jitter)


@lru_cache(maxsize=64)
def _camera_layer(seed: int, src: Source, cam_id: int, s: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sky, buildings and trees of a camera, 1.4 x wider and a bit taller than an image (to pan and tilt):
    RGB, distance (m), and a fixed asphalt grain."""
    cam = make_camera(seed, src, cam_id)
    w, pad = int(1.4 * s), int(_PAD * s)
    hgt = s + 2 * pad
    yh = cam.horizon * s + pad
    rows = np.arange(hgt, dtype=np.float32)[:, None]
    f = np.clip((rows - pad) / max(yh - pad, 1.0), 0, 1)
    top, bottom = np.array(cam.sky[0], np.float32), np.array(cam.sky[1], np.float32)
    img = np.ascontiguousarray(np.broadcast_to((top * (1 - f) + bottom * f)[:, None, :], (hgt, w, 3)))
    z = np.full((hgt, w), Z_FAR, np.float32)
    step = max(4, s // 24)
    for x, bw, h, r_, g_, b_, zb, windows in cam.buildings:
        x0, x1 = int((x + 0.2) * s), int((x + 0.2 + bw) * s)
        y0, y1 = int(yh - h * cam.horizon * s * 1.6), int(yh + 2)
        x0c, x1c, y0c = max(x0, 0), min(x1, w), max(y0, 0)
        if x1c <= x0c or y1 <= y0c:
            continue
        img[y0c:y1, x0c:x1c] = (r_, g_, b_)
        z[y0c:y1, x0c:x1c] = Z_FAR * zb
        if windows:
            for yy in range(y0 + step // 2, y1 - step, step):
                for xx in range(x0 + step // 3, x1 - step // 2, step):
                    if yy >= 0 and 0 <= xx < w:
                        img[yy:yy + step // 2, xx:min(xx + step // 2, w)] = (r_ * 0.6, g_ * 0.65, b_ * 0.75)
    for tx, tr, tg1, tg2, th in cam.trees:
        c = (int((tx + 0.2) * s), int(yh - th * s * 0.5))
        cv2.ellipse(img, c, (int(tr * s), int(th * s * 0.5)), 0, 0, 360, (tg1 * 0.6, tg2, tg1 * 0.5), -1, cv2.LINE_AA)
        z[max(0, c[1] - int(th * s * 0.5)):int(yh) + 2, max(0, c[0] - int(tr * s)):c[0] + int(tr * s)] = Z_FAR * 0.4
    grain = _rng(seed, src.code, cam_id, _T_CAMERA, 1).normal(0, 0.02, (hgt, w, 1)).astype(np.float32)
    return img, z, grain


def _background(seed: int, src: Source, cam_id: int, rng: np.random.Generator,
                s: int) -> Tuple[np.ndarray, np.ndarray, float]:
    """One image's background (camera layer panned and tilted, plus road): RGB, distance (m), horizon row."""
    cam = make_camera(seed, src, cam_id)
    layer, layer_z, grain = _camera_layer(seed, src, cam_id, s)
    pad = int(_PAD * s)
    dy = int(round(rng.uniform(-0.04, 0.04) * s))
    off = int(round((0.2 + rng.uniform(-0.15, 0.15)) * s))
    yh = cam.horizon * s + dy
    r0 = pad - dy
    img = layer[r0:r0 + s, off:off + s].copy()
    z = layer_z[r0:r0 + s, off:off + s].copy()
    rows = np.arange(s, dtype=np.float32)
    g0 = min(int(np.floor(yh)) + 1, s - 1)                                # first ground row
    depth_rows = np.clip(CAM_HEIGHT * s / np.maximum(rows - yh, 1e-3), Z_NEAR, Z_FAR)
    far_light = np.clip(depth_rows / 60.0, 0, 1)[:, None] * 0.08             # distant road looks paler
    img[g0:] = (np.array(cam.road, np.float32)[None, :] + far_light[g0:])[:, None, :]
    img[g0:] += grain[r0 + g0:r0 + s, off:off + s]                          # asphalt grain
    z[g0:] = depth_rows[g0:, None]
    vx = s * (0.5 + rng.uniform(-0.3, 0.3))
    for bx in (-0.6, 0.35, 1.4):
        p0 = (vx * 16, yh * 16)
        p1 = (bx * s * 16, s * 16.0)
        for t0 in np.arange(0, 1, 0.12):
            t1 = min(t0 + 0.06, 1)
            a = (int(p0[0] + (p1[0] - p0[0]) * t0 ** 1.5), int(p0[1] + (p1[1] - p0[1]) * t0 ** 1.5))
            b = (int(p0[0] + (p1[0] - p0[0]) * t1 ** 1.5), int(p0[1] + (p1[1] - p0[1]) * t1 ** 1.5))
            cv2.line(img, a, b, cam.lane, max(1, int(s * 0.012 * t1 + 1)), cv2.LINE_AA, 4)
    return img, z, yh


def _composite(dst: np.ndarray, tex: np.ndarray, quad: np.ndarray) -> Tuple[np.ndarray, Tuple[slice, slice]]:
    """Warp an RGBA texture onto ``quad`` (TL, TR, BR, BL), alpha-blend it over ``dst`` inside the quad's
    bounding box; returns the alpha there and the box."""
    s = dst.shape[0]
    x0, y0 = np.floor(quad.min(axis=0)).astype(int)
    x1, y1 = np.ceil(quad.max(axis=0)).astype(int) + 1
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, s), min(y1, s)
    box = (slice(y0, max(y1, y0)), slice(x0, max(x1, x0)))
    if x1 - x0 < 1 or y1 - y0 < 1:                  # off screen (cv2 would read a 0 size as "same as input")
        return np.zeros((max(y1 - y0, 0), max(x1 - x0, 0)), np.float32), box
    h, w = tex.shape[:2]
    src = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], np.float32)
    m = cv2.getPerspectiveTransform(src, (quad - np.array([x0, y0], np.float32)).astype(np.float32))
    warped = cv2.warpPerspective(tex, m, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    a = warped[..., 3:4]
    dst[box] += (warped[..., :3] - dst[box]) * a
    return a[..., 0], box


def _split_end(v: Vehicle, tex: np.ndarray, q: np.ndarray, front: bool, shift: float,
               width: float) -> List[Tuple[np.ndarray, np.ndarray, float]]:
    """Cut an end face at the belt line; the part above (windshield or rear window and roof) is set back
    along the car, so in a turned view it slides towards the side face by ``shift`` px per metre of
    set-back (bottom and top of the glass separately, which slants it)."""
    g = KINDS[v.kind]
    if v.kind == "truck":
        back_bottom = back_top = 0.0
    elif front:
        back_bottom, back_top = float(g["xa"]) * v.length, float(g["xb"]) * v.length
    else:
        back_bottom, back_top = (1 - float(g["xd"])) * v.length, (1 - float(g["xc"])) * v.length
    h = tex.shape[0]
    rb = int(round((h - 1) - float(g["belt"]) * v.height * PX_PER_M))         # belt row in the texture
    f = rb / (h - 1)
    left_b, right_b = q[0] + (q[3] - q[0]) * f, q[1] + (q[2] - q[1]) * f
    lower = np.array([left_b, right_b, q[2], q[3]], np.float32)
    dxb, dxt = np.float32([back_bottom * shift, 0]), np.float32([back_top * shift, 0])
    upper = np.array([q[0] + dxt, q[1] + dxt, right_b + dxb, left_b + dxb], np.float32)
    return [(tex[rb:], lower, width), (tex[:rb + 1], upper, width)]


def render_clear(seed: int, job: Job, size: int = DEFAULT_SIZE) -> Tuple[np.ndarray, np.ndarray]:
    """Render the clean image of ``job`` (H x W x 3 RGB float32 in [0, 1]) and its depth in [0, 1]."""
    rng = _rng(seed, job.src.code, job.pid, job.k, _T_IMAGE)
    cam = make_camera(seed, job.src, job.cam)
    v, side, front, rear = vehicle_textures(seed, job.src, job.pid)
    s = size * SUPERSAMPLE
    img, z, yh = _background(seed, job.src, job.cam, rng, s)

    yaw = np.deg2rad(cam.yaw + rng.uniform(-14, 14))
    sn, cs = float(np.sin(yaw)), float(np.cos(yaw))
    side_w, end_w = v.length * abs(sn), v.width * 1.1 * abs(cs)
    total_w = side_w + end_w
    fill = rng.uniform(0.8, 0.95)
    scale = min(fill * s / total_w, rng.uniform(0.76, 0.9) * s / (v.height * HEADROOM))   # px per metre
    hpx = v.height * HEADROOM * scale
    yg = float(np.clip(rng.uniform(0.86, 0.97) * s, hpx + 2, s - 1))     # where the wheels touch the road
    room = max(0.0, (s - total_w * scale) / 2 - 0.01 * s)                # keep the vehicle inside the frame
    xc = s / 2 + float(np.clip(rng.uniform(-0.06, 0.06) * s, -room, room))
    x0, x1 = xc - total_w * scale / 2, xc + total_w * scale / 2
    # side texture front-left when sin > 0; the visible end sits at the side's front or rear end
    side_tex = side if sn >= 0 else side[:, ::-1]
    end_tex = front if cs >= 0 else rear
    end_left = (sn >= 0) == (cs >= 0)
    fs, fe = 1 - 0.3 * abs(cs), 1 - 0.2 * abs(sn)          # far-edge shrink (perspective)

    def quad(xl: float, xr: float, far_left: bool, shrink: float) -> np.ndarray:
        """Face quad between columns xl and xr whose far edge is shrunk and raised."""
        near = (yg - hpx, yg)
        lift = (1 - shrink) * hpx * 0.3
        far = (yg - lift - hpx * shrink, yg - lift)
        left, right = (far, near) if far_left else (near, far)
        return np.array([[xl, left[0]], [xr, right[0]], [xr, right[1]], [xl, left[1]]], np.float32)

    if end_left:
        xj = x0 + end_w * scale                                           # the corner nearest to us
        side_q, end_q = quad(xj, x1, False, fs), quad(x0, xj, True, fe)
    else:
        xj = x0 + side_w * scale
        side_q, end_q = quad(x0, xj, True, fs), quad(xj, x1, False, fe)
    if side_w > 0.25 and end_w > 0.25:             # two faces seen: light them differently (3-D cue)
        end_tex = end_tex * np.array([0.8, 0.8, 0.8, 1.0], np.float32)
    faces = [(side_tex, side_q, side_w)]
    faces += _split_end(v, end_tex, end_q, cs >= 0, abs(sn) * scale * (1 if end_left else -1), end_w)
    # soft shadow on the road
    ax, ay = int(total_w * scale * 0.56), max(2, int(0.05 * s))
    m = int(s * 0.06)
    sx0, sy0 = max(int(xc) - ax - m, 0), max(int(yg) - ay - m, 0)
    sx1, sy1 = min(int(xc) + ax + m, s), min(int(yg) + ay + m, s)
    patch = np.zeros((sy1 - sy0, sx1 - sx0), np.float32)
    cv2.ellipse(patch, (int(xc) - sx0, int(yg) - sy0), (ax, ay), 0, 0, 360, 1.0, -1)
    patch = cv2.GaussianBlur(patch, (0, 0), s * 0.02)
    img[sy0:sy1, sx0:sx1] *= (1 - 0.5 * patch)[..., None]
    alpha = np.zeros((s, s), np.float32)
    for tex, q, width in faces:
        if width * scale >= 2:
            a_face, box = _composite(img, tex, q)
            alpha[box] = np.maximum(alpha[box], a_face)
    # vehicle distance: that of the road where it stands, growing towards the far edges
    z_car = CAM_HEIGHT * s / max(yg - yh, 1.0)
    cols = np.arange(s, dtype=np.float32)[None, :]
    z_vehicle = z_car * (1 + 0.25 * np.abs(cols - xj) / max(total_w * scale, 1.0))
    z = z * (1 - alpha) + z_vehicle * alpha

    img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    z = cv2.resize(z, (size, size), interpolation=cv2.INTER_AREA)
    # light: per camera colour gain and brightness, per image exposure and gamma
    gain = np.array(cam.gain, np.float32) * cam.brightness * rng.uniform(0.82, 1.15)
    img = np.clip(img * gain, 0, 1) ** np.float32(rng.uniform(0.8, 1.25))
    # relative depth as a monocular estimator gives it: from normalised disparity 1/z (far ranges compress)
    depth = normalize_depth(-1.0 / np.clip(z, Z_NEAR, Z_FAR))
    depth = depth + 0.05 * _smooth_noise(rng, size, 4)
    return img.astype(np.float32), normalize_depth(depth)


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Low-frequency noise in [-1, 1]: a ``cells`` x ``cells`` random grid upsampled smoothly."""
    grid = rng.uniform(-1, 1, (cells, cells)).astype(np.float32)
    return cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC).clip(-1, 1)


# --------------------------------------------------------------------------------------------
# Haze and camera style.
# --------------------------------------------------------------------------------------------
def syn_haze_params(seed: int, job: Job) -> Tuple[float, float]:
    """``(airlight, beta)`` of the synthetic hazy twin of ``job``."""
    return sample_haze_params(_rng(seed, job.src.code, job.pid, job.k, _T_HAZE))


def real_haze(clear: np.ndarray, depth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Haze the scattering model of section 7 does not produce: uneven, tinted, blurring, flat."""
    size = clear.shape[0]
    beta = rng.uniform(0.5, 1.9) * np.exp(0.6 * _smooth_noise(rng, size, int(rng.integers(2, 5))))
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
    bgr = np.clip(img[..., ::-1] * 255.0 + 0.5, 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def render_job(seed: int, job: Job, size: int = DEFAULT_SIZE) -> Dict[str, bytes]:
    """The encoded image(s) of ``job``: ``{"clear": ..., "foggy": ...}`` for the kinds of its source."""
    clear, depth = render_clear(seed, job, size)
    if job.src.key == "syn":
        airlight, beta = syn_haze_params(seed, job)
        hazy = synthesize(clear, depth, beta, airlight)
        return {"clear": encode_jpeg(clear, JPEG_QUALITY_SYN), "foggy": encode_jpeg(hazy, JPEG_QUALITY_SYN)}
    cam = make_camera(seed, job.src, job.cam)
    rng = _rng(seed, job.src.code, job.pid, job.k, _T_STYLE)
    if job.src.key == "clear":
        return {"clear": encode_jpeg(real_style(clear, cam, rng), cam.quality)}
    return {"foggy": encode_jpeg(real_style(real_haze(clear, depth, rng), cam, rng), cam.quality)}


# --------------------------------------------------------------------------------------------
# Writing, summary and figure.
# --------------------------------------------------------------------------------------------
_OURS = re.compile(r"^\d{5}_c\d{3}_\d{6}_\d+\.jpg$")


def prepare_out(out: Path, force: bool) -> bool:
    """Check that ``out`` may be written (see --help) and create the folders; with --force, clear the
    images of an earlier run of this script. Returns whether ``out`` is ours (new, or made by us)."""
    existing = [folder_path(out, *f) for f in folders() if folder_path(out, *f).is_dir()
                and any(folder_path(out, *f).iterdir())]
    ours = not existing or (out / MARKER).is_file()
    if existing and not force:
        raise FileExistsError(f"{out} already holds a dataset ({existing[0]} is not empty); "
                              "pass --force to overwrite it")
    if existing and ours:
        removed = 0
        for folder in existing:
            for p in folder.iterdir():
                if p.is_file() and _OURS.match(p.name):
                    p.unlink()
                    removed += 1
        logger.info("--force: removed %d images of an earlier demo dataset in %s", removed, out)
    elif existing:
        logger.warning("--force: %s was not made by this script; overwriting files in place, deleting none", out)
    for f in folders():
        folder_path(out, *f).mkdir(parents=True, exist_ok=True)
    return ours


def _render_group(task: Tuple[int, int, List[Job]]) -> List[Tuple[Job, str, bytes]]:
    """Render the images of one identity: ``(job, kind, jpeg bytes)`` in plan order."""
    seed, size, jobs = task
    return [(job, kind, data) for job in jobs for kind, data in render_job(seed, job, size).items()]


def generate(out: Path, seed: int = DEFAULT_SEED, size: int = DEFAULT_SIZE, scale: float = 1.0,
             force: bool = False, workers: int = 1) -> Dict[str, Tuple[int, int, int, int]]:
    """Write the whole dataset under ``out``; returns per folder (images, identities, cameras, bytes).

    The files do not depend on ``workers``: every image has its own random stream.
    """
    out = Path(out)
    ours = prepare_out(out, force)
    groups: Dict[Tuple[str, int], List[Job]] = {}
    for job in build_plan(seed, scale):
        groups.setdefault((job.src.key, job.pid), []).append(job)
    tasks = [(seed, size, jobs) for jobs in groups.values()]
    stats: Dict[str, List] = {}

    def write(results: List[Tuple[Job, str, bytes]]) -> None:
        """Write one identity's files and count them."""
        for job, kind, data in results:
            rel = f"{job.src.root}/{job.split}_{kind}"
            (out / rel / job.name).write_bytes(data)
            st = stats.setdefault(rel, [0, set(), set(), 0])
            st[0] += 1
            st[1].add(job.pid)
            st[2].add(job.cam)
            st[3] += len(data)

    if workers > 1 and "fork" in mp.get_all_start_methods():
        # forked workers inherit a single OpenCV thread (the pool already uses the cores; calling
        # cv2.setNumThreads inside a forked child can hang), the parent gets its setting back
        n_threads = cv2.getNumThreads()
        cv2.setNumThreads(1)
        try:
            pool = mp.get_context("fork").Pool(workers)
        finally:
            cv2.setNumThreads(n_threads)
        with pool:
            for results in pool.imap(_render_group, tasks, chunksize=4):
                write(results)
    else:
        for task in tasks:
            write(_render_group(task))
    if ours:  # never mark a foreign dataset as ours: a later --force would delete its images
        (out / MARKER).write_text(json.dumps({"generator": "Datasets/make_demo.py", "seed": seed, "size": size,
                                              "scale": scale}, sort_keys=True) + "\n")
    for fn in (vehicle_textures, make_camera, _camera_layer):
        fn.cache_clear()
    return {k: (v[0], len(v[1]), len(v[2]), v[3]) for k, v in sorted(stats.items())}


def _label(tile: np.ndarray, text: str) -> None:
    """Write ``text`` on a tile (white with a dark outline)."""
    for color, thick in (((0, 0, 0), 3), ((255, 255, 255), 1)):
        cv2.putText(tile, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, color, thick, cv2.LINE_AA)


def make_figure(out: Path, path: Path, n_ids: int = 4, per_id: int = 2, tile: int = 112) -> None:
    """Grid of samples: rows syn clear / syn hazy / real clear / real hazy; columns come in pairs of one identity."""
    rows = [("FVRID_syn", "train_clear", "syn clear"), ("FVRID_syn", "train_foggy", "syn hazy (twin)"),
            ("FVRID_clear", "train_clear", "real clear"), ("FVRID_real", "train_foggy", "real hazy")]
    label_w, gap = 150, 4
    cols = n_ids * per_id
    canvas = np.full((len(rows) * (tile + gap) + gap, label_w + cols * (tile + gap) + gap, 3), 255, np.uint8)
    picked: Dict[str, List[str]] = {}
    for r, (root, sub, text) in enumerate(rows):
        folder = Path(out) / root / sub
        if root == "FVRID_syn" and sub == "train_foggy":
            names = picked["FVRID_syn"]                              # the twins of the row above
        else:
            by_id: Dict[int, List[str]] = {}
            for p in sorted(folder.iterdir()):
                parsed = parse_name(p.name)
                if parsed:
                    by_id.setdefault(parsed[0], []).append(p.name)
            names = []
            for pid in sorted(by_id)[:n_ids]:
                seen, chosen = set(), []
                for name in by_id[pid]:                              # prefer distinct cameras
                    cam = parse_name(name)[1]  # type: ignore[index]
                    if cam not in seen:
                        seen.add(cam)
                        chosen.append(name)
                names += (chosen + by_id[pid])[:per_id]
            picked[root] = names
        y = gap + r * (tile + gap)
        cv2.putText(canvas, text, (8, y + tile // 2 + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        for c, name in enumerate(names):
            img = cv2.imread(str(folder / name))
            img = cv2.resize(img, (tile, tile), interpolation=cv2.INTER_AREA)
            pid, cam = parse_name(name)  # type: ignore[misc]
            _label(img, f"id {pid} c{cam}")
            x = label_w + gap + c * (tile + gap)
            canvas[y:y + tile, x:x + tile] = img
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a 256-colour palette keeps the PNG small (about 180 KB instead of 550 KB) at little visible cost
    Image.fromarray(canvas[..., ::-1].copy()).quantize(256, Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE) \
        .save(path, "PNG", optimize=True)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(
        description="Write a small procedural vehicle dataset in the FVRID layout (FVRID_syn, FVRID_clear, "
                    "FVRID_real with their twelve sub-folders) under --out, so that every command runs offline.",
        epilog="If --out already holds images in any of the twelve folders the script stops, unless --force: "
               "then, if --out carries the marker " + MARKER + " of an earlier run, the images of that run "
               "(files named PPPPP_cCCC_FFFFFF_K.jpg) in the twelve folders are deleted first; otherwise files "
               "are overwritten in place, nothing is deleted and no marker is written. Nothing outside the "
               "twelve folders is ever deleted. The same --seed (and --size, --scale) gives byte-identical files.")
    p.add_argument("--out", required=True, help="dataset root (e.g. Datasets/demo)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed, >= 0 (default %(default)s)")
    p.add_argument("--size", type=int, default=DEFAULT_SIZE, help="image side in pixels (default %(default)s)")
    p.add_argument("--scale", type=float, default=1.0,
                   help="multiply the identity counts (default %(default)s; 0.1 gives a tiny set for tests)")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                   help="processes (default %(default)s); the output does not depend on it")
    p.add_argument("--force", action="store_true", help="write into a non-empty dataset (see below)")
    p.add_argument("--figure", default=None, help="also write a sample grid PNG here (e.g. Fig/demo_samples.png)")
    args = p.parse_args(argv)
    if args.seed < 0:
        p.error("--seed must be >= 0")
    if args.size < 32:
        p.error("--size must be at least 32")
    if args.scale <= 0:
        p.error("--scale must be > 0")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Generate the dataset (and optionally the figure); log a summary."""
    args = parse_args(argv)
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    out = Path(args.out)
    start = time.perf_counter()
    try:
        stats = generate(out, args.seed, args.size, args.scale, args.force, args.workers)
    except FileExistsError as exc:
        logger.error("%s", exc)
        return 2
    elapsed = time.perf_counter() - start
    logger.info("%-26s %7s %6s %5s %9s", "folder", "images", "ids", "cams", "KB")
    for rel, (n, ids, cams, nbytes) in stats.items():
        logger.info("%-26s %7d %6d %5d %9.1f", rel, n, ids, cams, nbytes / 1024)
    total = sum(s[3] for s in stats.values())
    logger.info("wrote %d images (%.1f MB) to %s in %.1f s (seed %d, size %d)",
                sum(s[0] for s in stats.values()), total / 2 ** 20, out, elapsed, args.seed, args.size)
    if args.figure:
        make_figure(out, Path(args.figure))
        logger.info("figure written to %s", args.figure)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
