"""The demo's cameras and scenes: background, viewpoint and light per camera; one clean image and its depth."""

from dataclasses import dataclass
from functools import lru_cache
from typing import List, Tuple

import cv2
import numpy as np

from rvsl.haze import normalize_depth

from .drawing import vehicle_textures
from .plan import DEFAULT_SIZE, JPEG_QUALITY_REAL, SUPERSAMPLE, T_CAMERA, T_IMAGE, Job, Source, stream
from .vehicles import HEADROOM, KINDS, PX_PER_M, Vehicle

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
    rng = stream(seed, src.code, cam, T_CAMERA)
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
def camera_layer(seed: int, src: Source, cam_id: int, s: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
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
    grain = stream(seed, src.code, cam_id, T_CAMERA, 1).normal(0, 0.02, (hgt, w, 1)).astype(np.float32)
    return img, z, grain


def _background(seed: int, src: Source, cam_id: int, rng: np.random.Generator,
                s: int) -> Tuple[np.ndarray, np.ndarray, float]:
    """One image's background (camera layer panned and tilted, plus road): RGB, distance (m), horizon row."""
    cam = make_camera(seed, src, cam_id)
    layer, layer_z, grain = camera_layer(seed, src, cam_id, s)
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
    rng = stream(seed, job.src.code, job.pid, job.k, T_IMAGE)
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
    depth = depth + 0.05 * smooth_noise(rng, size, 4)
    return img.astype(np.float32), normalize_depth(depth)


def smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Low-frequency noise in [-1, 1]: a ``cells`` x ``cells`` random grid upsampled smoothly."""
    grid = rng.uniform(-1, 1, (cells, cells)).astype(np.float32)
    return cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC).clip(-1, 1)

