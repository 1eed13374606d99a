"""The commands beside the trainers: ``extract.py`` and ``dehaze.py`` (``search.py``, ``export.py`` in their modules).

Each takes ``--weight W`` and its own flags, then optional ``KEY VALUE`` config overrides (``MODEL.DEVICE``,
``TEST.IMS_PER_BATCH``; for a reference-format file also the model keys). Outputs are written atomically,
and only after every input has been read, so a bad image leaves nothing half-written.
"""

import argparse
import logging
from pathlib import Path
from typing import Dict, List

import cv2
import numpy as np
import torch

from ..checkpoint import size_override
from ..config import CfgNode
from ..evaluation.visualize import to_bgr
from ..utils.errors import InputError
from ..utils.io import atomic_path, write_bytes_atomic, write_image
from .predictor import Predictor, image_paths

logger = logging.getLogger(__name__)

FEATURE_NAMES = ("clear", "hazy", "fused")
SHEET_ROWS = 16  # images drawn on a dehaze side-by-side sheet


def weight_argument(parser: argparse.ArgumentParser) -> None:
    """``--weight W``: an RVSL checkpoint or a reference-format state dict."""
    parser.add_argument("--weight", required=True, metavar="W",
                        help="RVSL checkpoint (.pth) or a reference-format state dict")


def input_output_arguments(parser: argparse.ArgumentParser) -> None:
    """``--weight``, ``--input DIR`` and ``--output OUT`` (extract.py, dehaze.py)."""
    weight_argument(parser)
    parser.add_argument("--input", required=True, metavar="DIR", help="an image folder (or one image file)")
    parser.add_argument("--output", required=True, metavar="OUT", help="output folder (created)")


def dehaze_arguments(parser: argparse.ArgumentParser) -> None:
    """extract's flags plus ``--sheet FILE``: an input | dehazed picture of the first images."""
    input_output_arguments(parser)
    parser.add_argument("--sheet", default="", metavar="FILE",
                        help=f"also write a side-by-side sheet (input | dehazed) of the first {SHEET_ROWS} images")


def build_predictor(cfg: CfgNode, args: argparse.Namespace) -> Predictor:
    """A Predictor for ``--weight`` on ``MODEL.DEVICE`` in batches of ``TEST.IMS_PER_BATCH``, at the model's
    ``INPUT.SIZE_TEST`` unless the command line gives one."""
    return Predictor(args.weight, device=cfg.MODEL.DEVICE, batch_size=cfg.TEST.IMS_PER_BATCH, cfg=cfg, key="--weight",
                     size=size_override(cfg, args.opts))


def output_folder(path: str) -> Path:
    """``--output`` as a folder (created); an existing file there is an error naming it."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise InputError(f"--output: {path} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    return out


def save_npy(path: Path, array: np.ndarray) -> None:
    """Write one array as ``.npy`` atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, array)


def write_features(out: Path, features: Dict[str, np.ndarray], names: List[str], source: str) -> None:
    """``features_{clear,hazy,fused}.npy``, ``names.txt`` (one name a line) and ``source.txt`` (the image folder)."""
    for name in FEATURE_NAMES:
        save_npy(out / f"features_{name}.npy", features[name].astype(np.float32))
    write_bytes_atomic(out / "names.txt", "".join(f"{n}\n" for n in names).encode("utf-8"))
    write_bytes_atomic(out / "source.txt", f"{Path(source).resolve()}\n".encode("utf-8"))


def run_extract(cfg: CfgNode, args: argparse.Namespace) -> Dict[str, np.ndarray]:
    """Features of every image of ``--input`` to ``--output``; returns them."""
    paths = image_paths(args.input, "--input")  # a bad path fails before the model loads
    predictor = build_predictor(cfg, args)
    features = predictor.features(paths)
    names = [Path(p).name for p in paths]
    out = output_folder(args.output)
    source = args.input if Path(args.input).is_dir() else str(Path(args.input).parent)
    write_features(out, features, names, source)
    logger.info("%d images, %d-dim features: %s", len(names), features["fused"].shape[1],
                ", ".join(f"features_{n}.npy" for n in FEATURE_NAMES))
    logger.info("written to %s (names.txt lists the images in row order)", out)
    return features


def run_dehaze(cfg: CfgNode, args: argparse.Namespace) -> List[Path]:
    """G_C(E_H(image)) of every image of ``--input``, at its original size, under the same name in ``--output``."""
    paths = image_paths(args.input, "--input")
    if Path(args.output).resolve() in {Path(p).resolve().parent for p in paths}:
        raise InputError(f"--output {args.output} holds the input images: the dehazed ones would replace them")
    bad = [p for p in paths if cv2.imread(p, cv2.IMREAD_UNCHANGED) is None]  # decoded in full before any write
    if bad:
        raise InputError(f"image does not decode: {bad[0]}" + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""))
    predictor = build_predictor(cfg, args)
    out = output_folder(args.output)
    written: List[Path] = []
    sheet_rows: List[np.ndarray] = []
    start = 0
    for batch in predictor.dehazed_batches(paths):  # one loader over all images, a batch at a time
        chunk, start = paths[start:start + len(batch)], start + len(batch)
        dehazed = to_bgr(torch.from_numpy(batch))
        for path, image in zip(chunk, dehazed):
            original = cv2.imread(path, cv2.IMREAD_COLOR)
            height, width = original.shape[:2]
            restored = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
            target = out / Path(path).name
            write_image(target, restored)
            written.append(target)
            if args.sheet and len(sheet_rows) < SHEET_ROWS:
                sheet_rows.append(np.concatenate([cv2.resize(original, image.shape[1::-1]), image], axis=1))
    logger.info("%d dehazed images written to %s", len(written), out)
    if args.sheet:
        sheet = Path(args.sheet)
        write_image(sheet, np.concatenate(sheet_rows, axis=0))
        logger.info("side-by-side sheet (input | dehazed) written to %s", sheet)
    return written
