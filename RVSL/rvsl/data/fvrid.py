"""The FVRID folder layout: file-name parsing, folder scanning and clear/hazy twin pairing.

Names follow VeRi-Wild style ``PPPPP_cCCC_FFFFFF_K.jpg``: identity ``PPPPP`` (-1 marks junk,
which is skipped) and camera ``CCC``. Per-file problems (a name that does not parse, a file that
does not decode, a synthetic image without its twin) are skipped with a warning naming the file;
a missing folder, or one left with no usable image, stops with an :class:`InputError`.
"""

import logging
import re
from pathlib import Path
from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

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


def is_decodable(path: str, full: bool = True) -> bool:
    """Whether ``path`` opens as an image: header only (fast) or a ``full`` decode."""
    try:
        with Image.open(path) as img:
            if full:
                img.load()
        return True
    except Exception:  # PIL raises many types for corrupt files
        return False


def warn_skipped(kind: str, paths: Sequence[str]) -> None:
    """Log one warning per skipped file (the first few named, the rest counted)."""
    for path in paths[:_MAX_NAMED]:
        logger.warning("skipping %s: %s", kind, path)
    if len(paths) > _MAX_NAMED:
        logger.warning("skipping %d more files (%s)", len(paths) - _MAX_NAMED, kind)


def list_images(folder: str, key: str = "", check_decode: bool = True) -> List[str]:
    """Sorted image files of ``folder``; other files and unreadable images are skipped with a warning.

    ``check_decode`` opens each image's header (fast; a full decode is ``Datasets/check_fvrid.py``'s
    job). ``key`` names the config key of the folder in error messages.
    """
    where = f" ({key})" if key else ""
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"data folder not found: {folder}{where}")
    files = sorted(p for p in root.iterdir() if p.is_file() and not p.name.startswith("."))
    images = [str(p) for p in files if p.suffix.lower() in IMG_EXTENSIONS]
    warn_skipped("not an image file", [str(p) for p in files if p.suffix.lower() not in IMG_EXTENSIONS])
    if check_decode:
        decodes = {p: is_decodable(p, full=False) for p in images}
        warn_skipped("image that does not decode", [p for p, ok in decodes.items() if not ok])
        images = [p for p, ok in decodes.items() if ok]
    if not images:
        raise InputError(f"no usable image in {folder}{where}")
    return images


def scan_labelled(folder: str, key: str = "", check_decode: bool = True) -> List[ImageRecord]:
    """Records of every parseable, non-junk image of ``folder`` with its original identity."""
    records, unparsed = [], []
    for path in list_images(folder, key, check_decode):
        parsed = parse_name(path)
        if parsed is None:
            unparsed.append(path)
        elif parsed[0] != JUNK_ID:
            records.append(ImageRecord(path, *parsed))
    warn_skipped("file name that does not parse as PID_cCAM_...", unparsed)
    if not records:
        raise InputError(f"no image with a parseable identity in {folder}" + (f" ({key})" if key else ""))
    return records


def relabel(records: Iterable[ImageRecord]) -> Tuple[List[ImageRecord], Dict[int, int]]:
    """Map identities to 0..N-1 in sorted order; returns the new records and the mapping."""
    records = list(records)
    mapping = {pid: i for i, pid in enumerate(sorted({r.pid for r in records}))}
    return [r._replace(pid=mapping[r.pid]) for r in records], mapping


def pair_twins(clear: Sequence[ImageRecord], hazy: Sequence[ImageRecord]) -> List[PairRecord]:
    """Pair clear and hazy records by file name; an image without its twin is skipped with a warning."""
    hazy_by_name = {Path(r.path).name: r for r in hazy}
    clear_names = {Path(r.path).name for r in clear}
    pairs = [PairRecord(r.path, hazy_by_name[Path(r.path).name].path, r.pid, r.camid)
             for r in clear if Path(r.path).name in hazy_by_name]
    warn_skipped("clear image without its hazy twin", [r.path for r in clear if Path(r.path).name not in hazy_by_name])
    warn_skipped("hazy image without its clear twin", [r.path for r in hazy if Path(r.path).name not in clear_names])
    if not pairs:
        raise InputError("no clear/hazy twin pair: file names of "
                         f"{Path(clear[0].path).parent} and {Path(hazy[0].path).parent} do not match")
    return pairs


def summarize(records: Sequence[ImageRecord]) -> Tuple[int, int, int]:
    """``(images, identities, cameras)`` of a record list."""
    return len(records), len({r.pid for r in records}), len({r.camid for r in records})
