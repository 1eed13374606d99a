"""Validation of a dataset in the FVRID layout: what is wrong with it, before anyone trains on it.

:func:`check_dataset` returns a :class:`Report` with per-folder counts and, per kind of problem,
the offending files. ``Datasets/check_fvrid.py`` prints it; the trainers call the same function
with ``fast=True`` at start-up and log what it finds (:func:`log_report`).

The layout (:data:`FVRID_FOLDERS`) is read from the ``DATASETS.*_PATH`` keys of the config defaults,
so the twelve folders are defined in one place. Kinds of problem (:data:`PROBLEM_KINDS`):

- ``missing_folder``, ``empty_folder``: a folder of the layout is absent or holds no image.
- ``not_an_image``: a file (or sub-folder) that the loader ignores (not .jpg/.jpeg/.png/.bmp).
- ``unparseable_name``: an image whose name does not parse as ``PID_cCAM_...``.
- ``undecodable``: an image that does not decode (full check only).
- ``missing_twin``: a synthetic clear image without its hazy twin (same name), or the reverse.
- ``twin_size_mismatch``: a synthetic twin pair whose images differ in size (full check only).
- ``train_test_overlap``: a training identity that also appears in the query or gallery of the
  same domain (synthetic, real clear or real hazy); reported once per identity and test folder.
- ``query_without_match``: a query with no gallery image of the same identity from another camera
  (the evaluation protocol would skip it).
- ``duplicate``: a file whose bytes equal another file's anywhere in the dataset (in one folder, or
  across folders, splits or domains: every folder has its own role, so no image belongs in two);
  the first path in sorted order is the original, each later copy is reported (full check only).

Identity -1 (junk) is counted but never checked: the loader and the protocol skip it.
"""

import hashlib
import io
import logging
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from PIL import Image
from tqdm import tqdm

from ..config.defaults import _C
from ..utils.errors import InputError
from .fvrid import IMG_EXTENSIONS, JUNK_ID, parse_name

logger = logging.getLogger(__name__)

# Config key suffix (``SYN_TRAIN_CLEAR``) -> folder relative to the data root, from the config defaults.
FVRID_FOLDERS: Dict[str, str] = {key[: -len("_PATH")]: str(value) for key, value in _C.DATASETS.items()
                                 if key.endswith("_PATH") and key != "DATA_PATH"}

# Problem kinds in report order, with the one-line description printed above their files.
PROBLEM_KINDS: Dict[str, str] = {
    "missing_folder": "folder of the layout does not exist",
    "empty_folder": "folder holds no image",
    "not_an_image": "file or folder the loader ignores (not .jpg/.jpeg/.png/.bmp)",
    "unparseable_name": "image name does not parse as PID_cCAM_...",
    "undecodable": "image does not decode",
    "missing_twin": "synthetic image without its clear/hazy twin (same file name)",
    "twin_size_mismatch": "synthetic clear/hazy twins differ in size",
    "train_test_overlap": "training identity also appears in query/gallery of the same domain",
    "query_without_match": "query has no gallery image of the same identity from another camera",
    "duplicate": "file has the same bytes as another file of the dataset",
}
# Kinds that need every image read (skipped by ``fast=True``).
FULL_ONLY = ("undecodable", "twin_size_mismatch", "duplicate")
DOMAINS = ("syn", "clear", "real")
_EXIF_ORIENTATION = 0x0112
# Domains whose folders each training stage reads (train, and query/gallery for validation).
STAGE_DOMAINS = {"STAGE1": ("syn",), "STAGE2": ("syn", "clear"), "STAGE3": ("syn", "real")}


@dataclass(frozen=True)
class FolderRole:
    """What a layout key means: domain (syn, clear, real), split (train, query, gallery), condition."""

    domain: str
    split: str
    condition: str


def folder_role(key: str) -> FolderRole:
    """Role of a layout key such as ``SYN_TRAIN_CLEAR`` or ``REAL_QUERY_FOGGY``."""
    parts = key.upper().split("_")
    if len(parts) != 3 or parts[0] not in ("SYN", "REAL") or parts[1] not in ("TRAIN", "QUERY", "GALLERY") \
            or parts[2] not in ("CLEAR", "FOGGY"):
        raise InputError(f"'{key}' is not a layout key (expected SYN|REAL_TRAIN|QUERY|GALLERY_CLEAR|FOGGY)")
    domain = "syn" if parts[0] == "SYN" else ("clear" if parts[2] == "CLEAR" else "real")
    return FolderRole(domain, parts[1].lower(), parts[2].lower())


def select_layout(domains: Iterable[str], layout: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """The folders of ``layout`` (default: FVRID's) that belong to ``domains`` (syn, clear, real)."""
    domains = set(domains)
    unknown = domains - set(DOMAINS)
    if unknown:
        raise InputError(f"unknown domain(s) {', '.join(sorted(unknown))}; expected {', '.join(DOMAINS)}")
    layout = FVRID_FOLDERS if layout is None else layout
    return {key: rel for key, rel in layout.items() if folder_role(key).domain in domains}


def layout_from_config(cfg, keys: Optional[Iterable[str]] = None) -> Tuple[str, Dict[str, str]]:
    """``(DATA_PATH, {key: folder})`` from a config's ``DATASETS`` node, for ``keys`` (default: all twelve)."""
    keys = list(FVRID_FOLDERS) if keys is None else [k[: -len("_PATH")] if k.endswith("_PATH") else k for k in keys]
    return str(cfg.DATASETS.DATA_PATH), {key: str(cfg.DATASETS[f"{key}_PATH"]) for key in keys}


@dataclass
class Problem:
    """One offending file (relative to the data root when under it) and what is wrong with it."""

    kind: str
    path: str
    detail: str = ""


@dataclass
class FolderStats:
    """Counts of one layout folder; ``exists`` is False for a missing folder."""

    key: str
    path: str
    exists: bool
    images: int = 0
    identities: int = 0
    cameras: int = 0
    junk: int = 0


@dataclass
class Report:
    """Result of :func:`check_dataset`: folder counts and the problems of each kind."""

    root: str
    fast: bool
    folders: List[FolderStats] = field(default_factory=list)
    problems: Dict[str, List[Problem]] = field(default_factory=lambda: {kind: [] for kind in PROBLEM_KINDS})

    @property
    def ok(self) -> bool:
        """True when no problem of any kind was found."""
        return not any(self.problems.values())

    def counts(self) -> Dict[str, int]:
        """Number of problems per kind (every kind, zeros included)."""
        return {kind: len(items) for kind, items in self.problems.items()}

    def to_dict(self) -> dict:
        """Plain data for ``--json``: every problem listed, nothing truncated."""
        return {
            "root": self.root,
            "fast": self.fast,
            "ok": self.ok,
            "skipped_checks": list(FULL_ONLY) if self.fast else [],
            "folders": [asdict(f) for f in self.folders],
            "problems": {kind: {"description": PROBLEM_KINDS[kind], "count": len(items),
                                "items": [{"path": p.path, "detail": p.detail} for p in items]}
                         for kind, items in self.problems.items()},
        }

    def add(self, kind: str, path: str, detail: str = "") -> None:
        """Record one problem of ``kind``."""
        self.problems[kind].append(Problem(kind, path, detail))


@dataclass
class _Folder:
    """Scan of one folder: its images by name and their parsed labels."""

    key: str
    path: Path
    images: Dict[str, Path] = field(default_factory=dict)
    labels: Dict[str, Tuple[int, int]] = field(default_factory=dict)


def _inspect(path: str) -> Tuple[bool, Optional[Tuple[int, int]], str]:
    """``(decodes, (width, height), sha256)`` of one file, reading it once."""
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


def _scan(key: str, folder: Path, report: Report, show) -> Optional[_Folder]:
    """List one folder: counts in ``report``, name problems recorded; None if it is missing."""
    if not folder.is_dir():
        report.folders.append(FolderStats(key, show(folder), False))
        report.add("missing_folder", show(folder), f"{key} folder not found")
        return None
    scan = _Folder(key, folder)
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue  # hidden files (and unfinished writes of the builder) are not data
        if entry.is_dir() or entry.suffix.lower() not in IMG_EXTENSIONS:
            report.add("not_an_image", show(entry), "sub-folder" if entry.is_dir() else f"extension '{entry.suffix}'")
            continue
        scan.images[entry.name] = entry
        parsed = parse_name(entry.name)
        if parsed is None:
            report.add("unparseable_name", show(entry), f"in {key}")
        else:
            scan.labels[entry.name] = parsed
    valid = [label for label in scan.labels.values() if label[0] != JUNK_ID]
    report.folders.append(FolderStats(key, show(folder), True, len(scan.images), len({p for p, _ in valid}),
                                      len({c for _, c in valid}), len(scan.labels) - len(valid)))
    if not scan.images:
        report.add("empty_folder", show(folder), f"{key} holds no image")
    return scan


def _check_twins(scans: Mapping[str, _Folder], report: Report, show) -> List[Tuple[Path, Path]]:
    """Record synthetic images without their twin; return the twin pairs found."""
    pairs = []
    for key, scan in scans.items():
        role = folder_role(key)
        if role.domain != "syn" or role.condition != "clear":
            continue
        twin_key = f"SYN_{role.split.upper()}_FOGGY"
        twin = scans.get(twin_key)
        if twin is None:
            continue  # a missing twin folder is reported as such, not file by file
        for name, path in scan.images.items():
            if name in twin.images:
                pairs.append((path, twin.images[name]))
            else:
                report.add("missing_twin", show(path), f"no hazy twin in {show(twin.path)}")
        for name, path in twin.images.items():
            if name not in scan.images:
                report.add("missing_twin", show(path), f"no clear twin in {show(scan.path)}")
    return pairs


def _check_overlap(scans: Mapping[str, _Folder], report: Report, show) -> None:
    """Record test folders holding identities that a training folder of the same domain holds."""
    train_ids: Dict[str, Dict[int, Path]] = {}
    for key, scan in scans.items():
        role = folder_role(key)
        if role.split == "train":
            ids = train_ids.setdefault(role.domain, {})
            for name, (pid, _) in scan.labels.items():
                if pid != JUNK_ID:
                    ids.setdefault(pid, scan.images[name])
    for key, scan in scans.items():
        role = folder_role(key)
        if role.split == "train" or role.domain not in train_ids:
            continue
        reported = set()
        for name, (pid, _) in scan.labels.items():
            if pid in train_ids[role.domain] and pid not in reported:
                reported.add(pid)
                report.add("train_test_overlap", show(scan.images[name]),
                           f"identity {pid} is also in training ({show(train_ids[role.domain][pid])})")


def _check_queries(scans: Mapping[str, _Folder], report: Report, show) -> None:
    """Record queries with no true match in their gallery under the protocol (same id, other camera)."""
    for key, scan in scans.items():
        role = folder_role(key)
        gallery = scans.get(key.replace("_QUERY_", "_GALLERY_")) if role.split == "query" else None
        if gallery is None:
            continue
        cameras: Dict[int, set] = {}
        for pid, camid in gallery.labels.values():
            cameras.setdefault(pid, set()).add(camid)
        for name, (pid, camid) in scan.labels.items():
            if pid != JUNK_ID and not cameras.get(pid, set()) - {camid}:
                seen = "only from the same camera" if pid in cameras else "not at all"
                report.add("query_without_match", show(scan.images[name]),
                           f"identity {pid} is in {show(gallery.path)} {seen}")


def _check_contents(scans: Mapping[str, _Folder], pairs: Sequence[Tuple[Path, Path]], report: Report,
                    show, workers: int, progress: bool) -> None:
    """Decode and hash every image: undecodable files, twin size mismatches, duplicates."""
    paths = [str(p) for scan in scans.values() for p in scan.images.values()]
    bar = dict(total=len(paths), desc="checking images", unit="img", disable=not progress, leave=False)
    if workers > 1 and len(paths) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = list(tqdm(pool.map(_inspect, paths, chunksize=64), **bar))
    else:
        results = [_inspect(p) for p in tqdm(paths, **bar)]
    info = dict(zip(paths, results))
    for path in paths:
        if not info[path][0]:
            report.add("undecodable", show(path), "PIL cannot decode it")
    for clear, hazy in pairs:
        size_c, size_h = info[str(clear)][1], info[str(hazy)][1]
        if size_c is not None and size_h is not None and size_c != size_h:
            report.add("twin_size_mismatch", show(hazy),
                       f"{size_h[0]}x{size_h[1]} but its clear twin {show(clear)} is {size_c[0]}x{size_c[1]}")
    first: Dict[str, str] = {}
    for path in sorted(paths, key=show):
        digest = info[path][2]
        if digest in first:
            report.add("duplicate", show(path), f"same bytes as {first[digest]}")
        else:
            first[digest] = show(path)


def check_dataset(root: Union[str, Path], layout: Optional[Mapping[str, str]] = None, fast: bool = False,
                  workers: int = 1, progress: bool = False) -> Report:
    """Check the FVRID dataset under ``root`` and return a :class:`Report`.

    ``layout`` maps layout keys (``SYN_TRAIN_CLEAR``, ...) to folders relative to ``root`` (or
    absolute); default :data:`FVRID_FOLDERS`; a subset checks only those folders. ``fast`` lists
    folders only (names, twins, identities, protocol), skipping the decode, size and duplicate checks:
    the trainers' start-up mode. ``workers`` > 1 decodes in parallel processes. A missing ``root``
    raises :class:`InputError`.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"dataset folder not found: {root}")
    layout = FVRID_FOLDERS if layout is None else dict(layout)
    for key in layout:
        folder_role(key)  # unknown keys are an error, not a silent skip

    def show(path: Union[str, Path]) -> str:
        path = Path(path)
        try:
            return path.relative_to(root).as_posix()
        except ValueError:
            return str(path)

    report = Report(str(root), fast)
    scans = {}
    for key, rel in layout.items():
        scan = _scan(key, root / rel, report, show)
        if scan is not None:
            scans[key] = scan
    pairs = _check_twins(scans, report, show)
    _check_overlap(scans, report, show)
    _check_queries(scans, report, show)
    if not fast:
        _check_contents(scans, pairs, report, show, workers, progress)
    return report


def format_report(report: Report, max_listed: int = 5) -> str:
    """Human-readable report: a table of folder counts, then each kind of problem with its first files."""
    lines = [f"FVRID dataset check: {report.root}" + (" (fast: no decode, size or duplicate check)" if report.fast else ""),
             "", f"{'folder':<28} {'images':>8} {'ids':>7} {'cams':>6} {'junk':>6}"]
    for stats in report.folders:
        if stats.exists:
            lines.append(f"{stats.path:<28} {stats.images:>8} {stats.identities:>7} {stats.cameras:>6} {stats.junk:>6}")
        else:
            lines.append(f"{stats.path:<28} {'missing':>8}")
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


def log_report(report: Report, log: Optional[logging.Logger] = None, max_listed: int = 3) -> bool:
    """Log each kind of problem as a warning naming its first files; returns ``report.ok``."""
    log = log or logger
    for kind, items in report.problems.items():
        if items:
            named = "; ".join(f"{p.path}" + (f" ({p.detail})" if p.detail else "") for p in items[:max_listed])
            more = f" and {len(items) - max_listed} more" if len(items) > max_listed else ""
            log.warning("dataset check: %d %s (%s): %s%s", len(items), kind, PROBLEM_KINDS[kind], named, more)
    if report.ok:
        log.info("dataset check%s: no problem in %d folder(s) under %s",
                 " (fast)" if report.fast else "", len(report.folders), report.root)
    return report.ok


def startup_check(cfg, log: Optional[logging.Logger] = None) -> Report:
    """The trainers' start-up check: fast checks of the folders ``cfg.MODE.STAGE`` reads, problems logged.

    Problems are warnings, not errors (the loader skips bad files); a missing ``DATA_PATH`` raises
    :class:`InputError`. Returns the report (``report.ok``).
    """
    root, layout = layout_from_config(cfg)
    domains = STAGE_DOMAINS.get(str(cfg.MODE.STAGE), DOMAINS)
    report = check_dataset(root, select_layout(domains, layout), fast=True)
    log_report(report, log)
    if not report.ok:
        (log or logger).warning("run 'python Datasets/check_fvrid.py %s' for the full check", root)
    return report
