"""Pictures for a quick look at results: rank lists and input / dehazed / re-hazed triplets (PNG, cv2)."""

import logging
from pathlib import Path
from typing import Dict, FrozenSet, List, Mapping, Optional, Protocol, Sequence, Tuple, Union

import cv2
import numpy as np
import torch

from ..utils.io import write_image
from .base import DatasetEvaluator

logger = logging.getLogger(__name__)

CELL = 128  # side of one thumbnail, pixels
BORDER = 4
GAP = 12  # between the query and its results
QUERY_COLOUR = (255, 128, 0)  # BGR: blue
MATCH_COLOUR = (0, 200, 0)  # green: same identity
MISS_COLOUR = (0, 0, 255)  # red: another identity


def thumbnail(path: str, colour: Tuple[int, int, int]) -> np.ndarray:
    """The image at ``path`` resized to CELL x CELL with a coloured border (grey if unreadable)."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        logger.warning("rank list: cannot read %s, drawing a grey cell", path)
        img = np.full((CELL, CELL, 3), 128, dtype=np.uint8)
    img = cv2.resize(img, (CELL - 2 * BORDER, CELL - 2 * BORDER), interpolation=cv2.INTER_AREA)
    return cv2.copyMakeBorder(img, BORDER, BORDER, BORDER, BORDER, cv2.BORDER_CONSTANT, value=colour)


def rank_row(query: str, results: Sequence[str], colours: Sequence[Tuple[int, int, int]], slots: int) -> np.ndarray:
    """One BGR row: the query (blue border), a gap, then ``results`` with their border ``colours``, in
    ``slots`` cells (empty cells stay white)."""
    row = np.full((CELL, CELL + GAP + slots * CELL, 3), 255, dtype=np.uint8)
    row[:, :CELL] = thumbnail(query, QUERY_COLOUR)
    for k, (path, colour) in enumerate(zip(results, colours)):
        x = CELL + GAP + k * CELL
        row[:, x:x + CELL] = thumbnail(path, colour)
    return row


def save_rank_list(
    distmat: torch.Tensor,
    q_pids: Sequence[int],
    g_pids: Sequence[int],
    q_camids: Sequence[int],
    g_camids: Sequence[int],
    q_paths: Sequence[str],
    g_paths: Sequence[str],
    out_file: Union[str, Path],
    topk: int = 10,
) -> Path:
    """One row per query (rows of ``distmat``): the query, then its top-k gallery images.

    Same-identity same-camera gallery entries are left out, as in evaluation; borders are green for a
    true match, red otherwise, blue for the query. Returns the written PNG's path.
    """
    dist = torch.as_tensor(distmat).detach().float().cpu()
    if dist.dim() != 2 or dist.shape[0] != len(q_paths) or dist.shape[1] != len(g_paths):
        raise ValueError(f"distmat {tuple(dist.shape)} does not match {len(q_paths)} query and "
                         f"{len(g_paths)} gallery paths")
    q_pids_t, q_cams_t = torch.as_tensor(q_pids).cpu(), torch.as_tensor(q_camids).cpu()
    g_pids_t, g_cams_t = torch.as_tensor(g_pids).cpu(), torch.as_tensor(g_camids).cpu()
    rows = []
    for i in range(dist.shape[0]):
        order = torch.argsort(dist[i], stable=True)
        junk = (g_pids_t[order] == q_pids_t[i]) & (g_cams_t[order] == q_cams_t[i])
        order = order[~junk][:topk].tolist()
        colours = [MATCH_COLOUR if int(g_pids_t[j]) == int(q_pids_t[i]) else MISS_COLOUR for j in order]
        rows.append(rank_row(q_paths[i], [g_paths[j] for j in order], colours, topk))
    if not rows:
        raise ValueError("save_rank_list needs at least one query row")
    return write_image(out_file, np.concatenate(rows, axis=0))


def to_bgr(images: torch.Tensor) -> np.ndarray:
    """B x 3 x H x W in [0, 1] -> B x H x W x 3 uint8 BGR."""
    arr = (images.detach().float().clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return np.ascontiguousarray(arr[..., ::-1])


def save_triplets(
    inputs: torch.Tensor, dehazed: torch.Tensor, rehazed: torch.Tensor, out_file: Union[str, Path]
) -> Path:
    """One row per image: input | dehazed | re-hazed (B x 3 x H x W in [0, 1], equal shapes). Returns the PNG path."""
    if not (inputs.dim() == 4 and inputs.shape == dehazed.shape == rehazed.shape):
        raise ValueError(f"save_triplets needs three B x 3 x H x W batches of one shape, got "
                         f"{tuple(inputs.shape)}, {tuple(dehazed.shape)}, {tuple(rehazed.shape)}")
    if inputs.shape[0] == 0:
        raise ValueError("save_triplets needs at least one image")
    cols = [to_bgr(t) for t in (inputs, dehazed, rehazed)]
    rows = [np.concatenate([c[b] for c in cols], axis=1) for b in range(inputs.shape[0])]
    return write_image(out_file, np.concatenate(rows, axis=0))


class RankListSource(Protocol):
    """What :class:`PictureEvaluator` needs of a ReID evaluator to draw its rank lists."""

    has_paths: bool

    def save_rank_lists(self, out_dir: Path, num: int) -> List[Path]:
        """Write rank-list pictures of the first ``num`` queries into ``out_dir``; their paths."""


class PictureEvaluator(DatasetEvaluator):
    """Pictures in ``out_dir``: input | dehazed | re-hazed triplets of the first ``num`` images
    (``triplets.png``; re-hazed = G_H(E_C(dehazed)), the cycle back to the input) and, when ``ranked_by``
    is given, its rank lists of the first ``num`` queries (``rank_<branch>.png``). Returns no metrics.
    """

    def __init__(self, out_dir: Union[str, Path], num: int = 10, ranked_by: Optional[RankListSource] = None) -> None:
        if num < 1:
            raise ValueError(f"num must be >= 1, got {num}")
        self.out_dir = Path(out_dir)
        self.num = num
        self.ranked_by = ranked_by
        self.reset()

    def reset(self) -> None:
        """Forget the collected images."""
        self._images: List[List[torch.Tensor]] = [[], [], []]
        self._count = 0

    def needs(self, batch: Mapping) -> FrozenSet[str]:
        """Dehazed and cycled images until ``num`` triplets are collected, then none."""
        return frozenset({"dehazed", "cycled"}) if self._count < self.num else frozenset()

    def process(self, batch: Mapping, outputs: Mapping[str, torch.Tensor]) -> None:
        """Keep input, dehazed and cycled images of the batch's first rows while fewer than ``num`` are kept."""
        take = min(self.num - self._count, int(batch["img"].shape[0]))
        if take <= 0:
            return
        for kept, images in zip(self._images, (batch["img"], outputs["dehazed"], outputs["cycled"])):
            kept.append(images[:take].detach().float().cpu())
        self._count += take

    def evaluate(self) -> Dict:
        """Write the pictures (logging their paths); returns {}."""
        written = []
        if self.ranked_by is not None:
            if self.ranked_by.has_paths:
                written += self.ranked_by.save_rank_lists(self.out_dir, self.num)
            else:
                logger.warning("batches carry no 'path': rank lists skipped")
        if self._count:
            written.append(save_triplets(*(torch.cat(kept) for kept in self._images), self.out_dir / "triplets.png"))
        logger.info("wrote %s", ", ".join(str(p) for p in written) or "no pictures")
        return {}
