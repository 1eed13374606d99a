"""FVRID folders: file-name parsing, the one folder scanner (loaders and checks) and clear/hazy twin pairing.

Names follow VeRi-Wild style ``PPPPP_cCCC_FFFFFF_K.jpg``: identity ``PPPPP`` (-1 marks junk,
which is skipped) and camera ``CCC``. Per-file problems (a name that does not parse, a file that
does not decode, a synthetic image without its twin) are skipped with a warning naming the file;
a missing folder, or one left with no usable image, stops with an :class:`InputError`.
"""

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence, Set, Tuple

from PIL import Image

from ..utils.errors import InputError

logger = logging.getLogger(__name__)

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
NAME_PATTERN = re.compile(r"([-\d]+)_c(\d+)")
JUNK_ID = -1
# How many skipped files are named one by one before the rest are only counted.
_MAX_NAMED = 10


class ImageRecord(NamedTuple):
    """One labelled image: its path, identity and camera."""

    path: str
    pid: int
    camid: int


class PairRecord(NamedTuple):
    """A synthetic clear image, its rendered hazy twin, the (relabelled) identity and camera."""

    clear: str
    hazy: str
    pid: int
    camid: int


def parse_name(name: str) -> Optional[Tuple[int, int]]:
    """``(identity, camera)`` from a VeRi-Wild style file name, or None if it does not parse."""
    match = NAME_PATTERN.search(Path(name).name)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2))


def is_decodable(path: str) -> bool:
    """Whether ``path`` opens as an image (header only: fast; a full decode is the offline checker's job)."""
    try:
        with Image.open(path):
            return True
    except Exception:  # PIL raises many types for corrupt files
        return False


# (problem kind, absolute path) already warned about in this process: each problem is told once,
# whether the start-up check (rvsl.data.check, same kind names) or a loader finds it first.
_REPORTED: Set[Tuple[str, str]] = set()


def mark_reported(kind: str, paths: Iterable[str]) -> None:
    """Record problems of ``kind`` (e.g. ``missing_twin``) about ``paths`` as told: no loader repeats them."""
    _REPORTED.update((kind, os.path.abspath(p)) for p in paths)


def warn_skipped(kind: str, reason: str, paths: Sequence[str]) -> None:
    """Warn once per skipped file not yet reported as ``kind`` (the first few named, the rest counted)."""
    paths = [p for p in paths if (kind, os.path.abspath(p)) not in _REPORTED]
    mark_reported(kind, paths)
    for path in paths[:_MAX_NAMED]:
        logger.warning("skipping %s: %s", reason, path)
    if len(paths) > _MAX_NAMED:
        logger.warning("skipping %d more files (%s)", len(paths) - _MAX_NAMED, reason)


@dataclass
class FolderScan:
    """Listing of one folder: its images, the entries a loader ignores and, if labelled, the parsed names."""

    folder: str
    images: List[str] = field(default_factory=list)
    ignored: List[Tuple[str, str]] = field(default_factory=list)
    labels: Dict[str, Tuple[int, int]] = field(default_factory=dict)
    unparsed: List[str] = field(default_factory=list)


def scan_folder(folder: str, key: str = "", labelled: bool = True) -> FolderScan:
    """List ``folder`` (hidden entries skipped); parse the image names only if it is ``labelled``.

    ``ignored`` holds ``(path, why)`` for sub-folders and files without an image extension.
    A missing folder is an :class:`InputError` naming ``key``.
    """
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"data folder not found: {folder}" + (f" ({key})" if key else ""))
    scan = FolderScan(folder)
    for entry in sorted(p for p in root.iterdir() if not p.name.startswith(".")):
        if entry.is_dir() or entry.suffix.lower() not in IMG_EXTENSIONS:
            scan.ignored.append((str(entry), "sub-folder" if entry.is_dir() else f"extension '{entry.suffix}'"))
            continue
        scan.images.append(str(entry))
        parsed = parse_name(entry.name) if labelled else None
        if parsed is not None:
            scan.labels[str(entry)] = parsed
        elif labelled:
            scan.unparsed.append(str(entry))
    return scan


def _usable(folder: str, key: str, labelled: bool) -> Tuple[FolderScan, List[str]]:
    """Scan a folder for a loader: skipped entries warned about; the images that open."""
    scan = scan_folder(folder, key, labelled)
    warn_skipped("not_an_image", "not an image file", [path for path, _ in scan.ignored])
    decodes = {p: is_decodable(p) for p in scan.images}
    warn_skipped("undecodable", "image that does not decode", [p for p, ok in decodes.items() if not ok])
    images = [p for p, ok in decodes.items() if ok]
    if not images:
        raise InputError(f"no usable image in {folder}" + (f" ({key})" if key else ""))
    return scan, images


def list_images(folder: str, key: str = "") -> List[str]:
    """Sorted images of an unlabelled ``folder`` (names never parsed); skipped files are warned about.

    Each image's header is opened (fast). ``key`` names the config key of the folder in error messages.
    """
    return _usable(folder, key, labelled=False)[1]


def scan_labelled(folder: str, key: str = "") -> List[ImageRecord]:
    """Records of every parseable, non-junk image of ``folder`` with its original identity."""
    scan, images = _usable(folder, key, labelled=True)
    decoded = set(images)
    warn_skipped("unparseable_name", "file name that does not parse as PID_cCAM_...",
                 [p for p in scan.unparsed if p in decoded])
    records = [ImageRecord(path, *scan.labels[path]) for path in images
               if path in scan.labels and scan.labels[path][0] != JUNK_ID]
    if not records:
        raise InputError(f"no image with a parseable identity in {folder}" + (f" ({key})" if key else ""))
    return records


def relabel(records: Iterable[ImageRecord]) -> Tuple[List[ImageRecord], Dict[int, int]]:
    """Map identities to 0..N-1 in sorted order; returns the new records and the mapping."""
    records = list(records)
    mapping = {pid: i for i, pid in enumerate(sorted({r.pid for r in records}))}
    return [r._replace(pid=mapping[r.pid]) for r in records], mapping


def match_twins(clear: Sequence[str], hazy: Sequence[str]) -> Tuple[List[Tuple[str, str]], List[str], List[str]]:
    """Match clear and hazy paths by file name: ``(pairs, clear without twin, hazy without twin)``."""
    hazy_by_name = {Path(p).name: p for p in hazy}
    clear_names = {Path(p).name for p in clear}
    pairs = [(p, hazy_by_name[Path(p).name]) for p in clear if Path(p).name in hazy_by_name]
    return (pairs, [p for p in clear if Path(p).name not in hazy_by_name],
            [p for p in hazy if Path(p).name not in clear_names])


def pair_twins(clear: Sequence[ImageRecord], hazy: Sequence[ImageRecord]) -> List[PairRecord]:
    """Pair clear and hazy records by file name; an image without its twin is skipped with a warning."""
    by_path = {r.path: r for r in clear}
    matched, clear_only, hazy_only = match_twins([r.path for r in clear], [r.path for r in hazy])
    pairs = [PairRecord(c, h, by_path[c].pid, by_path[c].camid) for c, h in matched]
    warn_skipped("missing_twin", "clear image without its hazy twin", clear_only)
    warn_skipped("missing_twin", "hazy image without its clear twin", hazy_only)
    if not pairs:
        raise InputError("no clear/hazy twin pair: file names of "
                         f"{Path(clear[0].path).parent} and {Path(hazy[0].path).parent} do not match")
    return pairs


def summarize(records: Sequence[ImageRecord]) -> Tuple[int, int, int]:
    """``(images, identities, cameras)`` of a record list."""
    return len(records), len({r.pid for r in records}), len({r.camid for r in records})
