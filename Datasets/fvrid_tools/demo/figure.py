"""The demo's sample figure: rows syn clear / syn hazy / real clear / real hazy, columns in pairs of one identity.

Identities and cameras come from the plan, never from file names.
"""

from pathlib import Path
from typing import Dict, List, Sequence

import cv2
import numpy as np
from PIL import Image

from rvsl import layout

from .plan import Job

ROWS = ((layout.SYN, "clear", "syn clear"), (layout.SYN, "hazy", "syn hazy (twin)"),
        (layout.REAL_CLEAR, "clear", "real clear"), (layout.REAL_HAZY, "hazy", "real hazy"))


def _label(tile: np.ndarray, text: str) -> None:
    """Write ``text`` on a tile (white with a dark outline)."""
    for color, thick in (((0, 0, 0), 3), ((255, 255, 255), 1)):
        cv2.putText(tile, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, color, thick, cv2.LINE_AA)


def pick_samples(jobs: Sequence[Job], domain: str, n_ids: int, per_id: int) -> List[Job]:
    """Training images of the first ``n_ids`` identities of ``domain``, ``per_id`` each, distinct cameras first."""
    by_id: Dict[int, List[Job]] = {}
    for job in sorted((j for j in jobs if j.src.domain == domain and j.split == "train"), key=lambda j: j.name):
        by_id.setdefault(job.pid, []).append(job)
    picked: List[Job] = []
    for pid in sorted(by_id)[:n_ids]:
        seen, chosen = set(), []
        for job in by_id[pid]:
            if job.cam not in seen:
                seen.add(job.cam)
                chosen.append(job)
        picked += (chosen + by_id[pid])[:per_id]
    return picked


def make_figure(out: Path, path: Path, jobs: Sequence[Job], n_ids: int = 4, per_id: int = 2,
                tile: int = 112) -> None:
    """Write the sample grid of the dataset under ``out`` (generated from ``jobs``) as a PNG at ``path``."""
    label_w, gap = 150, 4
    cols = n_ids * per_id
    canvas = np.full((len(ROWS) * (tile + gap) + gap, label_w + cols * (tile + gap) + gap, 3), 255, np.uint8)
    for r, (domain, condition, text) in enumerate(ROWS):
        y = gap + r * (tile + gap)
        cv2.putText(canvas, text, (8, y + tile // 2 + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        for c, job in enumerate(pick_samples(jobs, domain, n_ids, per_id)):
            img = cv2.imread(str(Path(out) / job.folder(condition).rel / job.name))
            img = cv2.resize(img, (tile, tile), interpolation=cv2.INTER_AREA)
            _label(img, f"id {job.pid} c{job.cam}")
            x = label_w + gap + c * (tile + gap)
            canvas[y:y + tile, x:x + tile] = img
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a 256-colour palette keeps the PNG small (about 180 KB instead of 550 KB) at little visible cost
    Image.fromarray(canvas[..., ::-1].copy()).quantize(256, Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE) \
        .save(path, "PNG", optimize=True)
