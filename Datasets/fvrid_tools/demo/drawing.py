"""Drawing the demo's vehicles: side, front and rear textures (RGBA) on a canvas in vehicle units."""

from functools import lru_cache
from typing import Callable, Sequence, Tuple

import cv2
import numpy as np

from .plan import Source
from .vehicles import HEADROOM, KINDS, PX_PER_M, Vehicle, make_vehicle, shade

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
        cv_.line(0.245, 0.99, 1.0, 0.99, shade(v.cargo, 0.8), 2)
        cv_.poly([(0.0, bot), (0.0, 0.62), (0.03, 0.72), (0.225, 0.74), (0.225, bot)], v.body)
        cv_.poly([(0.025, 0.47), (0.03, 0.66), (0.16, 0.68), (0.16, 0.47)], v.window)
        cv_.line(0.17, bot + 0.04, 0.17, 0.66, shade(v.body, 0.6), 2)
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
                 shade(v.window, 1.5))  # reflection
        pillar = dark if v.dark_pillars else v.body
        n = v.n_windows
        doors = []
        for i in range(1, n):
            f = i / n
            ub, ut = g0 + (g1 - g0) * f, t0 + (t1 - t0) * f
            cv_.poly([(ub - 0.012, vb), (ut - 0.012, vt), (ut + 0.012, vt), (ub + 0.012, vb)], pillar)
            doors.append(ub)
        # door seams and handles
        seam = shade(v.body, 0.55)
        for ub in [g0 - 0.01] + doors:
            cv_.line(ub, vb, ub, bot + 0.06, seam, 1.5)
            cv_.rect(ub + 0.03, belt - 0.07, ub + 0.07, belt - 0.05, shade(v.body, 0.7))
        if v.kind == "pickup":
            cv_.line(xd + 0.01, belt + 0.01, 0.99, belt + 0.01, shade(v.body, 0.6), 2)
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
        cv_.ellipse(wu, r, ru * 0.18, r * 0.18, shade(v.rim, 0.5))
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
                cv_.line(0.35, bot + 0.13 + k * 0.045, 0.65, bot + 0.13 + k * 0.045, shade(v.grille_color, 0.5), 1.5)
            _lights(cv_, v.light_shape, 0.3, (245, 240, 215), a + 0.04)
            cv_.rect(a + 0.02, bot, b - 0.02, bot + 0.07, v.trim)
            cv_.rect(0.42, bot + 0.015, 0.58, bot + 0.06, v.plate)
            cv_.rect(0.0, 0.5, a + 0.02, 0.62, dark)
            cv_.rect(b - 0.02, 0.5, 1.0, 0.62, dark)
            if v.marking in ("stripe", "double", "racing"):
                cv_.rect(a, 0.85, b, 0.9, v.mark)
        else:
            cv_.rect(a, bot + 0.04, b, 1.0, v.cargo)
            cv_.line(0.5, bot + 0.06, 0.5, 0.98, shade(v.cargo, 0.6), 2)
            for u in (0.3, 0.7):
                cv_.line(u, bot + 0.1, u, 0.9, shade(v.cargo, 0.75), 1.5)
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
             shade(v.window, 1.5))
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
                cv_.line(0.34, h, 0.66, h, shade(v.grille_color, 0.45), 1.2)
        elif v.grille == 1:
            cv_.rect(0.25, bot + 0.02, 0.75, bot + 0.12, shade(v.grille_color, 0.6))
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
            cv_.line(a + 0.05, belt - 0.02, b - 0.05, belt - 0.02, shade(v.body, 0.6), 1.5)
        if v.kind == "van":
            cv_.line(0.5, bot + 0.12, 0.5, glass_top, shade(v.body, 0.5), 2)
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

