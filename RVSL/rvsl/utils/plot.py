"""A picture of the training curves, drawn with OpenCV (no plotting library needed)."""

from pathlib import Path
from typing import Dict, List, Sequence

import cv2
import numpy as np

_COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
            (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207), (0, 0, 128), (128, 128, 0)]


def plot_losses(epochs: Sequence[Dict], path: Path, title: str = "", width: int = 900, height: int = 480) -> None:
    """Write a PNG of every named loss per epoch, each divided by its first-epoch value (log scale)."""
    names: List[str] = sorted({name for e in epochs for name in e["losses"]})
    canvas = np.full((height, width, 3), 255, np.uint8)
    left, right, top, bottom = 60, 230, 40, 50
    plot_w, plot_h = width - left - right, height - top - bottom
    x_of = [e["epoch"] for e in epochs]
    curves = {}
    for name in names:
        values = np.array([e["losses"].get(name, np.nan) for e in epochs], dtype=float)
        first = next((v for v in values if np.isfinite(v) and v > 0), None)
        if first is not None:
            curves[name] = np.log10(np.clip(values / first, 1e-4, None))
    finite = np.concatenate([c[np.isfinite(c)] for c in curves.values()]) if curves else np.zeros(1)
    lo, hi = min(float(finite.min()), -0.1), max(float(finite.max()), 0.1)
    x_lo, x_hi = min(x_of), max(max(x_of), min(x_of) + 1)

    def point(epoch: float, value: float):
        return (int(left + (epoch - x_lo) / (x_hi - x_lo) * plot_w), int(top + (hi - value) / (hi - lo) * plot_h))

    grey, font = (200, 200, 200), cv2.FONT_HERSHEY_SIMPLEX
    cv2.rectangle(canvas, (left, top), (left + plot_w, top + plot_h), (0, 0, 0), 1)
    for tick in np.linspace(lo, hi, 5):
        y = point(x_lo, tick)[1]
        cv2.line(canvas, (left, y), (left + plot_w, y), grey, 1)
        cv2.putText(canvas, f"{10 ** tick:.2g}", (5, y + 4), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    for epoch in x_of:
        x = point(epoch, lo)[0]
        cv2.putText(canvas, str(epoch), (x - 5, top + plot_h + 18), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(canvas, "epoch", (left + plot_w // 2 - 20, height - 10), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(canvas, title or "loss / first-epoch loss (log scale)", (left, 25), font, 0.55, (0, 0, 0), 1,
                cv2.LINE_AA)
    for i, (name, curve) in enumerate(curves.items()):
        colour = _COLOURS[i % len(_COLOURS)][::-1]  # RGB to BGR
        points = [point(e, v) for e, v in zip(x_of, curve) if np.isfinite(v)]
        if len(points) > 1:
            cv2.polylines(canvas, [np.array(points, np.int32)], False, colour, 2, cv2.LINE_AA)
        for p in points:
            cv2.circle(canvas, p, 3, colour, -1, cv2.LINE_AA)
        y = top + 10 + 20 * i
        cv2.line(canvas, (width - right + 15, y), (width - right + 40, y), colour, 2, cv2.LINE_AA)
        cv2.putText(canvas, name, (width - right + 48, y + 4), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), canvas)
