"""The full dataset check of ``Datasets/check_fvrid.py``: the library's fast check, then every image read.

On top of :func:`rvsl.data.check.scan_dataset` (names, twins, identities, protocol) it decodes and
hashes each image: ``undecodable`` files, ``twin_size_mismatch`` between synthetic twins and
``duplicate`` files (same bytes anywhere in the dataset; the first path in sorted order is the
original, each later copy is reported). :func:`format_report` prints a report.
"""

import hashlib
import io
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Dict, Mapping, Optional, Tuple, Union

from PIL import Image
from tqdm import tqdm

from rvsl.data.check import PROBLEM_KINDS, Report, scan_dataset

_EXIF_ORIENTATION = 0x0112


def inspect_image(path: str) -> Tuple[bool, Optional[Tuple[int, int]], str]:
    """``(decodes, (width, height) as the loaders see it, sha256)`` of one file, reading it once."""
    data = Path(path).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            width, height = img.size
            if img.getexif().get(_EXIF_ORIENTATION) in (5, 6, 7, 8):
                width, height = height, width  # the loaders (cv2) apply the rotation
            return True, (width, height), digest
    except Exception:  # PIL raises many types for corrupt files
        return False, None, digest


def check_contents(report: Report, workers: int = 1, progress: bool = False) -> Report:
    """Decode and hash every image of a fast ``report``: undecodable files, twin size mismatches, duplicates."""
    paths = report.images
    bar = dict(total=len(paths), desc="checking images", unit="img", disable=not progress, leave=False)
    if workers > 1 and len(paths) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = list(tqdm(pool.map(inspect_image, paths, chunksize=64), **bar))
    else:
        results = [inspect_image(p) for p in tqdm(paths, **bar)]
    info = dict(zip(paths, results))
    for path in paths:
        if not info[path][0]:
            report.add("undecodable", path, "PIL cannot decode it")
    for clear, hazy in report.pairs:
        size_c, size_h = info[clear][1], info[hazy][1]
        if size_c is not None and size_h is not None and size_c != size_h:
            report.add("twin_size_mismatch", hazy, f"{size_h[0]}x{size_h[1]} but its clear twin "
                       f"{report.show(clear)} is {size_c[0]}x{size_c[1]}")
    first: Dict[str, str] = {}
    for path in sorted(paths, key=report.show):
        digest = info[path][2]
        if digest in first:
            report.add("duplicate", path, f"same bytes as {first[digest]}")
        else:
            first[digest] = report.show(path)
    report.fast = False
    return report


def check_dataset(root: Union[str, Path], paths: Optional[Mapping[str, str]] = None, fast: bool = False,
                  workers: int = 1, progress: bool = False) -> Report:
    """Check the FVRID dataset under ``root``: the fast check, then (unless ``fast``) every image read.

    ``paths`` maps layout config keys to folders (see :func:`rvsl.data.check.scan_dataset`);
    ``workers`` > 1 decodes in parallel processes.
    """
    report = scan_dataset(root, paths)
    return report if fast else check_contents(report, workers, progress)


def format_report(report: Report, max_listed: int = 5) -> str:
    """Human-readable report: a table of folder counts, then each kind of problem with its first files."""
    fast = " (fast: no decode, size or duplicate check)" if report.fast else ""
    lines = [f"FVRID dataset check: {report.root}" + fast,
             "", f"{'folder':<28} {'images':>8} {'ids':>7} {'cams':>6} {'junk':>6}"]
    for stats in report.folders:
        if not stats.exists:
            lines.append(f"{stats.path:<28} {'missing':>8}")
        elif stats.labelled:
            lines.append(f"{stats.path:<28} {stats.images:>8} {stats.identities:>7} {stats.cameras:>6} {stats.junk:>6}")
        else:
            lines.append(f"{stats.path:<28} {stats.images:>8} {'-':>7} {'-':>6} {'-':>6}")
    lines.append("")
    for kind, items in report.problems.items():
        if not items:
            continue
        lines.append(f"{kind}: {len(items)} ({PROBLEM_KINDS[kind]})")
        for problem in items[:max_listed]:
            lines.append(f"  {problem.path}" + (f": {problem.detail}" if problem.detail else ""))
        if len(items) > max_listed:
            lines.append(f"  ... and {len(items) - max_listed} more")
    total = sum(report.counts().values())
    lines.append("OK: no problem found" if report.ok else
                 f"PROBLEMS: {total} in {sum(1 for n in report.counts().values() if n)} kind(s)")
    return "\n".join(lines)
