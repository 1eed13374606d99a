"""The demo's vehicles: what makes one identity look like itself (type, proportions, colours, details)."""

from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from .plan import T_VEHICLE, Source, stream

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
    rng = stream(seed, src.code, pid, T_VEHICLE)
    kinds, weights = list(KIND_WEIGHTS), np.array(list(KIND_WEIGHTS.values()))
    kind = kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]
    g = KINDS[kind]
    body = _pick_color(rng)
    two_tone = rng.random() < 0.18
    roof = _pick_color(rng, exclude=body) if two_tone else body
    plastic = rng.random() < 0.4
    trim = _jitter(rng, (30, 30, 32), 8) if plastic else shade(body, 0.9)
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
        grille_color=_jitter(rng, [(18, 18, 20), (175, 178, 182), shade(body, 0.7)][int(rng.integers(3))], 6),
        plate=(235, 235, 230) if rng.random() < 0.7 else (236, 200, 40),
    )


def shade(color: Sequence[int], f: float) -> Tuple[int, int, int]:
    """``color`` scaled by ``f`` (darker below 1, lighter above)."""
    return tuple(int(np.clip(c * f + (f - 1) * 40 * (f > 1), 0, 255)) for c in color)  # type: ignore[return-value]
