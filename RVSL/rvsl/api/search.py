"""``search.py``: query images against a gallery (an image folder or an ``extract.py`` output), top-k by distance.

Exact search computes squared Euclidean distances in chunks of queries; ``--index faiss`` builds a FAISS
index instead (flat, or IVF for large galleries) when ``faiss`` is installed.
"""

import argparse
import csv
import io
import logging
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
import torch

from ..config import CfgNode
from ..evaluation.visualize import rank_row
from ..utils.errors import InputError
from ..utils.io import write_bytes_atomic, write_image
from .commands import FEATURE_NAMES, build_predictor, output_folder, weight_argument
from .predictor import Predictor, image_paths

logger = logging.getLogger(__name__)

IVF_MIN_GALLERY = 100_000  # from this size on, FAISS uses an inverted-file index instead of a flat one
RESULT_COLOUR = (160, 160, 160)  # BGR grey: identities are unknown, so no match/miss colour
_CHUNK = 1024  # queries per distance block in exact search


def search_arguments(parser: argparse.ArgumentParser) -> None:
    """``--weight``, ``--query``, ``--gallery``, ``--output``, ``--topk``, ``--feature``, ``--index``."""
    weight_argument(parser)
    parser.add_argument("--query", required=True, metavar="Q", help="query image folder (or one image)")
    parser.add_argument("--gallery", required=True, metavar="G", help="gallery image folder or an extract.py output")
    parser.add_argument("--output", required=True, metavar="OUT", help="output folder (created)")
    parser.add_argument("--topk", type=int, default=10, metavar="K", help="results per query (default 10)")
    parser.add_argument("--feature", choices=FEATURE_NAMES, default="fused", help="which feature to compare")
    parser.add_argument("--index", choices=("exact", "faiss"), default="exact",
                        help="exact search (default) or a FAISS index for galleries beyond memory")


def load_gallery(gallery: str, predictor: Predictor, feature: str) -> Tuple[np.ndarray, List[str], Optional[Path]]:
    """(features, names, image folder or None) of a gallery folder or of an ``extract.py`` output folder."""
    root = Path(gallery)
    if (root / "names.txt").is_file():
        feats_file = root / f"features_{feature}.npy"
        if not feats_file.is_file():
            raise InputError(f"--gallery: {root} has names.txt but no {feats_file.name}")
        feats = np.load(feats_file)
        names = (root / "names.txt").read_text(encoding="utf-8").splitlines()
        if feats.ndim != 2 or len(feats) != len(names):
            raise InputError(f"--gallery: {feats_file} has shape {feats.shape} but names.txt lists {len(names)} names")
        source = root / "source.txt"
        folder = Path(source.read_text(encoding="utf-8").strip()) if source.is_file() else None
        logger.info("gallery: %d precomputed features from %s", len(names), root)
        return feats.astype(np.float32), names, folder if folder and folder.is_dir() else None
    paths = image_paths(gallery, "--gallery")
    return predictor.features(paths)[feature], [Path(p).name for p in paths], root if root.is_dir() else root.parent


def exact_topk(query: np.ndarray, gallery: np.ndarray, k: int) -> Tuple[np.ndarray, np.ndarray]:
    """(squared Euclidean distances, gallery indices) of the ``k`` nearest gallery rows of each query row."""
    g = torch.from_numpy(gallery).double()
    g_sq = (g * g).sum(1)
    dists, index = [], []
    for start in range(0, len(query), _CHUNK):
        q = torch.from_numpy(query[start:start + _CHUNK]).double()
        dist = ((q * q).sum(1, keepdim=True) + g_sq[None] - 2 * q @ g.T).clamp_min_(0)
        d, i = torch.topk(dist, k, dim=1, largest=False, sorted=True)
        dists.append(d.float())
        index.append(i)
    return torch.cat(dists).numpy(), torch.cat(index).numpy()


def faiss_topk(query: np.ndarray, gallery: np.ndarray, k: int) -> Tuple[np.ndarray, np.ndarray]:
    """The same as :func:`exact_topk` through FAISS (flat L2; IVF from :data:`IVF_MIN_GALLERY` rows on)."""
    try:
        import faiss  # optional: pip install faiss-cpu
    except ImportError as exc:
        raise InputError("--index faiss needs the faiss package (pip install faiss-cpu)") from exc
    dim = gallery.shape[1]
    if len(gallery) >= IVF_MIN_GALLERY:
        lists = int(4 * np.sqrt(len(gallery)))
        index = faiss.IndexIVFFlat(faiss.IndexFlatL2(dim), dim, lists)
        index.train(np.ascontiguousarray(gallery))
        index.nprobe = max(1, lists // 16)
    else:
        index = faiss.IndexFlatL2(dim)
    index.add(np.ascontiguousarray(gallery))
    dist, idx = index.search(np.ascontiguousarray(query), k)
    return dist.astype(np.float32), idx


def results_csv(q_names: List[str], g_names: List[str], dist: np.ndarray, idx: np.ndarray) -> bytes:
    """The top-k table: one row per (query, rank) with the gallery name and the squared distance."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["query", "rank", "gallery", "distance"])
    for qi, name in enumerate(q_names):
        for rank, (gi, d) in enumerate(zip(idx[qi], dist[qi]), start=1):
            writer.writerow([name, rank, g_names[gi], f"{d:.6g}"])
    return buffer.getvalue().encode("utf-8")


def rank_list_picture(query: Path, gallery: List[Path]) -> np.ndarray:
    """The query (blue border) then its results (grey borders), left to right, as one BGR row."""
    return rank_row(str(query), [str(path) for path in gallery], [RESULT_COLOUR] * len(gallery), len(gallery))


def run_search(cfg: CfgNode, args: argparse.Namespace) -> Tuple[np.ndarray, np.ndarray]:
    """Top-k gallery matches of every query image: ``results.csv`` and ``ranklists/<query>.jpg``."""
    if args.topk < 1:
        raise InputError(f"--topk must be >= 1, got {args.topk}")
    q_paths = image_paths(args.query, "--query")  # bad paths fail before the model loads
    if not Path(args.gallery).exists():
        raise InputError(f"--gallery: no such file or folder: {args.gallery}")
    predictor = build_predictor(cfg, args)
    query = predictor.features(q_paths)[args.feature]
    q_names = [Path(p).name for p in q_paths]
    q_folder = Path(q_paths[0]).parent
    gallery, g_names, g_folder = load_gallery(args.gallery, predictor, args.feature)
    if gallery.shape[1] != query.shape[1]:
        raise InputError(f"--gallery: {gallery.shape[1]}-dim features, but the model gives {query.shape[1]}")
    k = min(args.topk, len(g_names))
    dist, idx = (faiss_topk if args.index == "faiss" else exact_topk)(query, gallery, k)
    out = output_folder(args.output)
    write_bytes_atomic(out / "results.csv", results_csv(q_names, g_names, dist, idx))
    if g_folder is None:
        logger.warning("gallery images not found (no source.txt folder): no rank-list pictures")
    else:
        for qi, name in enumerate(q_names):
            picture = rank_list_picture(q_folder / name, [g_folder / g_names[j] for j in idx[qi]])
            write_image(out / "ranklists" / f"{name}.jpg", picture)
    logger.info("%d queries x %d gallery images (%s features, %s search): top-%d in %s", len(q_names),
                len(g_names), args.feature, args.index, k, out / "results.csv")
    return dist, idx
