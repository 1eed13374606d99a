"""Fast validation of a dataset in the FVRID layout, on the loaders' own scanner (:mod:`rvsl.data.fvrid`).

:func:`scan_dataset` lists the folders of the layout (:mod:`rvsl.layout`) and returns a
:class:`Report` with per-folder counts and, per kind of problem, the offending files. The trainers
call :func:`startup_check`; the offline tool ``Datasets/check_fvrid.py`` adds the checks that read
every image (decode, twin sizes, duplicates). Kinds of problem (:data:`PROBLEM_KINDS`):

- ``missing_folder``, ``empty_folder``: a folder of the layout is absent or holds no image.
- ``not_an_image``: a file (or sub-folder) that the loader ignores (not .jpg/.jpeg/.png/.bmp).
- ``unparseable_name``: an image of a labelled folder whose name does not parse as ``PID_cCAM_...``
  (the real training folders are unlabelled: their names are never parsed).
- ``undecodable``: an image that does not decode (full check only).
- ``missing_twin``: a synthetic clear image without its hazy twin (same name), or the reverse.
- ``twin_size_mismatch``: a synthetic twin pair whose images differ in size (full check only).
- ``train_test_overlap``: a synthetic training identity that also appears in the synthetic query or
  gallery; reported once per identity and test folder.
- ``query_without_match``: a query with no gallery image of the same identity from another camera
  (the evaluation protocol would skip it).
- ``duplicate``: a file whose bytes equal another file's anywhere in the dataset (full check only).

Identity -1 (junk) is counted but never checked: the loader and the protocol skip it.
"""

import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from ..utils.errors import InputError
from .. import layout
from .fvrid import JUNK_ID, FolderScan, mark_reported, match_twins, scan_folder

logger = logging.getLogger(__name__)

# Problem kinds in report order, with the one-line description printed above their files.
PROBLEM_KINDS: Dict[str, str] = {
    "missing_folder": "folder of the layout does not exist",
    "empty_folder": "folder holds no image",
    "not_an_image": "not an image file: a file or folder the loader ignores (not .jpg/.jpeg/.png/.bmp)",
    "unparseable_name": "image name does not parse as PID_cCAM_...",
    "undecodable": "image does not decode",
    "missing_twin": "clear image without its hazy twin, or hazy image without its clear twin (same file name)",
    "twin_size_mismatch": "synthetic clear/hazy twins differ in size",
    "train_test_overlap": "training identity also appears in query/gallery of the same domain",
    "query_without_match": "query has no gallery image of the same identity from another camera",
    "duplicate": "file has the same bytes as another file of the dataset",
}
# Kinds that need every image read (only the offline checker looks for them).
FULL_ONLY = ("undecodable", "twin_size_mismatch", "duplicate")


def select_layout(domains: Iterable[str], paths: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """``{config key: folder}`` of ``paths`` (default: the layout's) for the folders of ``domains``."""
    paths = layout.DEFAULT_PATHS if paths is None else paths
    return {f.key: paths[f.key] for f in layout.select(domains) if f.key in paths}


def layout_from_config(cfg) -> Tuple[str, Dict[str, str]]:
    """``(DATA_PATH, {config key: folder})`` of the twelve folders from a config's ``DATASETS`` node."""
    return str(cfg.DATASETS.DATA_PATH), {f.key: str(cfg.DATASETS[f.key]) for f in layout.FOLDERS}


@dataclass
class Problem:
    """One offending file (relative to the data root when under it) and what is wrong with it."""

    kind: str
    path: str
    detail: str = ""


@dataclass
class FolderStats:
    """Counts of one layout folder; ``exists`` is False for a missing folder; unlabelled: no identities."""

    key: str
    path: str
    exists: bool
    labelled: bool = True
    images: int = 0
    identities: int = 0
    cameras: int = 0
    junk: int = 0


@dataclass
class Report:
    """Result of a check: folder counts, the problems of each kind, and what the full check reads next."""

    root: str
    fast: bool = True
    folders: List[FolderStats] = field(default_factory=list)
    problems: Dict[str, List[Problem]] = field(default_factory=lambda: {kind: [] for kind in PROBLEM_KINDS})
    images: List[str] = field(default_factory=list, repr=False)
    pairs: List[Tuple[str, str]] = field(default_factory=list, repr=False)
    absent: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no problem of any kind was found."""
        return not any(self.problems.values())

    def counts(self) -> Dict[str, int]:
        """Number of problems per kind (every kind, zeros included)."""
        return {kind: len(items) for kind, items in self.problems.items()}

    def show(self, path: Union[str, Path]) -> str:
        """``path`` relative to the data root when it lies under it."""
        try:
            return Path(path).relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

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

    def add(self, kind: str, path: Union[str, Path], detail: str = "") -> None:
        """Record one problem of ``kind`` about ``path``."""
        self.problems[kind].append(Problem(kind, self.show(path), detail))


def _scan(folder: layout.LayoutFolder, path: Path, report: Report) -> FolderScan:
    """List one existing folder with the loaders' scanner; counts and name problems go into ``report``."""
    scan = scan_folder(str(path), f"DATASETS.{folder.key}", folder.labelled)
    for entry, why in scan.ignored:
        report.add("not_an_image", entry, why)
    for entry in scan.unparsed:
        report.add("unparseable_name", entry, f"in {folder.key}")
    valid = [label for label in scan.labels.values() if label[0] != JUNK_ID]
    report.folders.append(FolderStats(folder.key, report.show(path), True, folder.labelled, len(scan.images),
                                      len({p for p, _ in valid}), len({c for _, c in valid}),
                                      len(scan.labels) - len(valid)))
    if not scan.images:
        report.add("empty_folder", path, f"{folder.key} holds no image")
    report.images.extend(scan.images)
    return scan


def _check_twins(scans: Mapping[str, FolderScan], report: Report) -> None:
    """Record synthetic images without their twin; keep the twin pairs for the full check."""
    for key, scan in scans.items():
        folder = layout.BY_KEY[key]
        twin = layout.twin(folder)
        if folder.condition != "clear" or twin is None or twin.key not in scans:
            continue  # a missing twin folder is reported as such, not file by file
        pairs, clear_only, hazy_only = match_twins(scan.images, scans[twin.key].images)
        report.pairs.extend(pairs)
        for path in clear_only:
            report.add("missing_twin", path, f"no hazy twin in {report.show(scans[twin.key].folder)}")
        for path in hazy_only:
            report.add("missing_twin", path, f"no clear twin in {report.show(scan.folder)}")


def _check_overlap(scans: Mapping[str, FolderScan], report: Report) -> None:
    """Record test folders holding identities that a labelled training folder of the same domain holds."""
    train_ids: Dict[str, Dict[int, str]] = {}
    for key, scan in scans.items():
        if layout.BY_KEY[key].split == "train":
            ids = train_ids.setdefault(layout.BY_KEY[key].domain, {})
            for path, (pid, _) in scan.labels.items():
                if pid != JUNK_ID:
                    ids.setdefault(pid, path)
    test_ids: Dict[str, Dict[int, str]] = {}
    for key, scan in scans.items():
        folder = layout.BY_KEY[key]
        if folder.split in ("query", "gallery"):
            ids = test_ids.setdefault(folder.domain, {})
            for path, (pid, _) in scan.labels.items():
                if pid != JUNK_ID:
                    ids.setdefault(pid, path)
    for key, scan in scans.items():
        folder = layout.BY_KEY[key]
        known = train_ids.get(folder.domain, {}) if folder.split != "train" else {}
        if folder.split in layout.DEV_SPLITS:  # dev identities are in neither training nor test
            known = {**test_ids.get(folder.domain, {}), **known}
        reported = set()
        for path, (pid, _) in scan.labels.items():
            if pid in known and pid not in reported:
                reported.add(pid)
                report.add("train_test_overlap", path,
                           f"identity {pid} is also in {report.show(known[pid])}")


def _check_queries(scans: Mapping[str, FolderScan], report: Report) -> None:
    """Record queries with no true match in their gallery under the protocol (same id, other camera)."""
    for key, scan in scans.items():
        folder = layout.BY_KEY[key]
        if not folder.split.endswith("query"):
            continue
        gallery_split = folder.split.replace("query", "gallery")  # gallery, or dev_gallery
        gallery = scans.get(layout.find(folder.domain, gallery_split, folder.condition).key)
        if gallery is None:
            continue
        cameras: Dict[int, set] = {}
        for pid, camid in gallery.labels.values():
            cameras.setdefault(pid, set()).add(camid)
        for path, (pid, camid) in scan.labels.items():
            if pid != JUNK_ID and not cameras.get(pid, set()) - {camid}:
                seen = "only from the same camera" if pid in cameras else "not at all"
                report.add("query_without_match", path, f"identity {pid} is in {report.show(gallery.folder)} {seen}")


def scan_dataset(root: Union[str, Path], paths: Optional[Mapping[str, str]] = None,
                 optional: Sequence[str] = ()) -> Report:
    """Fast checks (names, twins, identities, protocol; nothing decoded) of the dataset under ``root``.

    ``paths`` maps layout config keys (``SYN_TRAIN_CLEAR_PATH``, ...) to folders relative to ``root``
    (or absolute); default: all twelve at their default places; a subset checks only those. The keys
    of ``optional`` may be absent all together: then they are listed in ``report.absent``, not as a
    problem. A missing ``root`` or a key outside the layout raises :class:`InputError`.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"dataset folder not found: {root}")
    paths = layout.DEFAULT_PATHS if paths is None else dict(paths)
    unknown = [key for key in paths if key not in layout.BY_KEY]
    if unknown:
        raise InputError(f"not a layout key: {', '.join(unknown)} (expected one of {', '.join(layout.BY_KEY)})")
    report = Report(str(root))
    if optional and not any((root / paths[key]).is_dir() for key in optional if key in paths):
        report.absent = [key for key in optional if key in paths]
    scans = {}
    for key, rel in paths.items():
        if key in layout.DEV_KEYS and not (root / rel).is_dir():
            report.absent.append(key)  # the dev split is optional
        if key in report.absent:
            continue
        if not (root / rel).is_dir():
            report.folders.append(FolderStats(key, report.show(root / rel), False, layout.BY_KEY[key].labelled))
            report.add("missing_folder", root / rel, f"{key} folder not found")
            continue
        scans[key] = _scan(layout.BY_KEY[key], root / rel, report)
    _check_twins(scans, report)
    _check_overlap(scans, report)
    _check_queries(scans, report)
    return report


def log_report(report: Report, log: Optional[logging.Logger] = None, max_listed: int = 3) -> bool:
    """Log each kind of problem as one warning naming its first files; returns ``report.ok``.

    Every file of the report is then marked as reported, so the loaders do not warn about it again.
    """
    log = log or logger
    for kind, items in report.problems.items():
        if items:
            named = "; ".join(f"{p.path}" + (f" ({p.detail})" if p.detail else "") for p in items[:max_listed])
            more = f" and {len(items) - max_listed} more" if len(items) > max_listed else ""
            log.warning("dataset check: %d %s (%s): %s%s", len(items), kind, PROBLEM_KINDS[kind], named, more)
        mark_reported(kind, [os.path.join(report.root, p.path) for p in items])
    if report.ok:
        log.info("dataset check%s: no problem in %d folder(s) under %s",
                 " (fast)" if report.fast else "", len(report.folders), report.root)
    return report.ok


def startup_check(cfg, log: Optional[logging.Logger] = None) -> Report:
    """The trainers' start-up check: fast checks of the folders ``cfg.MODE.STAGE`` reads, problems logged.

    Problems are warnings, not errors (the loader skips bad files); a missing ``DATA_PATH`` raises
    :class:`InputError`. The real query/gallery folders of stages 2/3 may be absent: said once at
    info level (that test set is then not evaluated). Returns the report (``report.ok``).
    """
    root, paths = layout_from_config(cfg)
    stage = str(cfg.MODE.STAGE)
    domains = layout.stage_domains(stage)
    real = layout.STAGE_REAL_DOMAIN.get(stage)
    optional = [f.key for f in layout.training_folders([real] if real else []) if f.split != "train"]
    read = {f.key for f in layout.training_folders(domains)}  # never the dev folders
    report = scan_dataset(root, {k: v for k, v in select_layout(domains, paths).items() if k in read}, optional)
    log = log or logger
    if report.absent:
        log.info("the %s test set is absent (%s): it will not be evaluated", real,
                 ", ".join(f"DATASETS.{key}" for key in report.absent))
    log_report(report, log)
    if not report.ok:
        log.warning("run 'python Datasets/check_fvrid.py %s' for the full check", root)
    return report
