"""A picture of the training curves, drawn with matplotlib's object API on an Agg canvas: no display is
needed and the process-wide pyplot backend is never touched."""

from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .io import atomic_path

_DPI = 100


def relative_curves(epochs: Sequence[Dict]) -> Dict[str, np.ndarray]:
    """Each named loss per epoch divided by its first finite positive value (NaN where an epoch lacks it)."""
    names: List[str] = sorted({name for e in epochs for name in e["losses"]})
    curves = {}
    for name in names:
        values = np.array([e["losses"].get(name, np.nan) for e in epochs], dtype=float)
        first = next((v for v in values if np.isfinite(v) and v > 0), None)
        if first is not None:
            curves[name] = np.clip(values / first, 1e-4, None)
    return curves


def plot_losses(epochs: Sequence[Dict], path: Path, title: str = "", width: int = 900, height: int = 480) -> None:
    """Write a PNG of every named loss per epoch, each divided by its first-epoch value (log scale)."""
    x = [e["epoch"] for e in epochs]
    fig = Figure(figsize=(width / _DPI, height / _DPI), dpi=_DPI)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for name, curve in relative_curves(epochs).items():
        ax.plot(x, curve, marker="o", markersize=3, linewidth=1.5, label=name)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss / first-epoch loss")
    ax.set_title(title or "loss / first-epoch loss (log scale)")
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
