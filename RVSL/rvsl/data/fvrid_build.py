"""Build the FVRID layout from VeRi-Wild / Vehicle-1M images and an index CSV, rendering synthetic haze.

The index (one row per output image; the original was never published) has the columns

- ``IMG``: output file name, FVRID naming ``PPPPP_cCCC_FFFFFF_K.jpg``;
- ``NAME``: source image, path relative to the source dataset's image folder (or its file name);
- ``SOURCE``: ``VeRi-Wild`` or ``Vehicle-1M`` (case, spaces and dashes ignored: ``Veriwild`` works);
- ``SAVE``: destination folder, e.g. ``FVRID_syn/train_clear`` (a prefix such as ``../../`` is ignored);
- ``ORI_NAME``: original file name in the source dataset, relative to its image folder.

The source image is ``SOURCE_DIR/ORI_NAME`` if that exists, else ``SOURCE_DIR/NAME``. Header names
are matched case-insensitively with the aliases of :data:`COLUMN_ALIASES`; other columns (such as
a pandas index column) are ignored; a file without a header (its first field an FVRID name) is read
in the order above, as the reference repo's ``Split.py`` did. Rows saved to a synthetic clear folder (``FVRID_syn/*_clear``) also get a hazy
twin of the same name in ``FVRID_syn/*_foggy``, rendered with :func:`rvsl.haze.synthesize` and
per-image ``A ~ U[0.4, 1.0]``, ``beta ~ U[1.0, 5.0]`` from a generator seeded by ``(seed, IMG)``
alone, so an image's haze does not depend on order or worker count.

Every output is written atomically (temporary file, then rename), so an existing output is finished:
a rerun skips it. ``manifest.csv`` lists every output with its source, haze parameters, seed, depth
source and SHA-256; ``fvrid_build.json`` records the settings a resumed run must match.
"""

import contextlib
import csv
import hashlib
import io
import json
import logging
import os
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from importlib import import_module
from pathlib import Path, PurePosixPath
from typing import Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from tqdm import tqdm

from ..utils.errors import InputError
from .check import FVRID_FOLDERS, folder_role
from .fvrid import parse_name

logger = logging.getLogger(__name__)

INDEX_COLUMNS = ("IMG", "NAME", "SOURCE", "SAVE", "ORI_NAME")
# Accepted header names per column (compared after lower-casing and turning spaces/dashes into "_").
COLUMN_ALIASES: Dict[str, Tuple[str, ...]] = {
    "IMG": ("img", "img_name", "fvrid_name", "fvrid", "new_name"),
    "NAME": ("name", "src_name", "source_name", "src_path", "source_path"),
    "SOURCE": ("source", "source_dataset", "src_dataset", "dataset"),
    "SAVE": ("save", "save_dir", "save_path", "save_folder", "folder"),
    "ORI_NAME": ("ori_name", "orig_name", "original_name", "ori_path"),
}
VERIWILD, VEHICLE1M = "VeRi-Wild", "Vehicle-1M"
_SOURCE_KEYS = {"veriwild": VERIWILD, "vehicle1m": VEHICLE1M}
# Depth files looked up per image, in this order of stems and extensions (see :func:`find_depth_file`).
DEPTH_EXTENSIONS = (".npy", ".png")
# Depth source recorded in the manifest when neither files nor an estimator are given.
GROUND_PLANE = "ground-plane-fallback"
MANIFEST_NAME = "manifest.csv"
SETTINGS_NAME = "fvrid_build.json"
MANIFEST_COLUMNS = ("file", "kind", "index_line", "source", "clear_twin", "airlight", "beta", "seed", "depth",
                    "sha256")
JPEG_QUALITY = 95
PNG_COMPRESSION = 3
# Suffix of unfinished writes (hidden files ``.NAME.XXXX.part`` next to the output); removed on resume.
TMP_SUFFIX = ".part"
_MAX_LISTED = 5
_UMASK = os.umask(0o022)
os.umask(_UMASK)


class IndexRow(NamedTuple):
    """One row of the index, with the line it was read from."""

    line: int
    img: str
    name: str
    source: str
    save: str
    ori_name: str


@dataclass(frozen=True)
class Task:
    """One planned output image (and, for a synthetic clear image, its hazy twin)."""

    line: int
    img: str
    save: str
    source: str
    source_path: str
    hazy_save: Optional[str] = None
    depth_path: Optional[str] = None
    depth: str = ""


@dataclass(frozen=True)
class Settings:
    """What every task needs besides itself; recorded in ``fvrid_build.json`` (but ``out``, ``index``)."""

    out: str
    index: str
    seed: int
    depth_mode: str
    disparity: bool
    estimator: str = ""


@dataclass
class BuildResult:
    """Summary of a build: outputs written now, found finished, and the manifest path."""

    written: int
    skipped: int
    manifest: str


def _norm_header(text: str) -> str:
    """Header cell normalised for alias matching."""
    return text.strip().lower().replace(" ", "_").replace("-", "_")


def _column_map(header: Sequence[str], path: str) -> Optional[Dict[str, int]]:
    """Column index per index field from a header row; None if no cell is a known column name."""
    lookup = {alias: column for column, aliases in COLUMN_ALIASES.items() for alias in aliases}
    found: Dict[str, int] = {}
    for i, cell in enumerate(header):
        column = lookup.get(_norm_header(cell))
        if column is not None and column not in found:
            found[column] = i
    if not found:
        return None
    missing = [c for c in ("IMG", "SOURCE", "SAVE") if c not in found]
    if missing or ("NAME" not in found and "ORI_NAME" not in found):
        missing = missing or ["NAME or ORI_NAME"]
        raise InputError(f"{path}: index has no column {', '.join(missing)}; expected columns "
                         f"{', '.join(INDEX_COLUMNS)} (header found: {', '.join(header)})")
    return found


def read_index(path: Union[str, Path]) -> List[IndexRow]:
    """Rows of an FVRID index CSV (comma, semicolon or tab separated; see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"index file not found: {path}")
    with open(path, newline="", encoding="utf-8-sig") as handle:
        first_line = handle.readline()
        handle.seek(0)
        delimiter = max(",;\t", key=first_line.count)  # the separator the first line uses most
        reader = csv.reader(handle, delimiter=delimiter)
        header = next(reader, None)
        if header is None:
            raise InputError(f"index file is empty: {path}")
        columns = _column_map(header, str(path))
        data: List[Tuple[int, List[str]]] = []
        if columns is None:
            if len(header) != len(INDEX_COLUMNS) or parse_name(header[0].strip()) is None:
                raise InputError(f"{path}: no header with the columns {', '.join(INDEX_COLUMNS)} "
                                 f"(first line: {', '.join(header)})")
            logger.info("%s has no header: reading its columns as %s", path, ", ".join(INDEX_COLUMNS))
            columns = {c: i for i, c in enumerate(INDEX_COLUMNS)}
            data.append((1, header))
        data.extend((reader.line_num, row) for row in reader)
    rows = []
    width = max(columns.values()) + 1
    for line, cells in data:
        if not any(c.strip() for c in cells):
            continue
        if len(cells) < width:
            raise InputError(f"{path} line {line}: {len(cells)} fields, expected at least {width}")
        get = {c: (cells[columns[c]].strip() if c in columns else "") for c in INDEX_COLUMNS}
        rows.append(IndexRow(line, get["IMG"], get["NAME"], get["SOURCE"], get["SAVE"], get["ORI_NAME"]))
    if not rows:
        raise InputError(f"index file has no rows: {path}")
    return rows


def haze_params(seed: int, name: str) -> Tuple[float, float]:
    """``(airlight, beta)`` of image ``name``: drawn from a generator keyed by ``seed`` and the name only."""
    from ..haze import sample_haze_params  # torch comes with rvsl.haze: imported only once rendering starts

    key = int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:8], "little")
    return sample_haze_params(np.random.default_rng(key))


def _save_folder(save: str) -> Optional[str]:
    """Layout folder (e.g. ``FVRID_syn/train_clear``) that ``save`` ends with, or None."""
    parts = PurePosixPath(save.replace("\\", "/")).parts
    for rel in FVRID_FOLDERS.values():
        rel_parts = PurePosixPath(rel).parts
        if tuple(parts[-len(rel_parts):]) == rel_parts:
            return rel
    return None


def find_depth_file(depth_dir: Path, row: IndexRow, save: str) -> Optional[Path]:
    """Depth file of a row: ``DIR/<IMG stem>``, ``DIR/<SAVE>/<IMG stem>``, ``DIR/<ORI_NAME stem>``, ``DIR/<NAME stem>``.

    Each stem is tried with ``.npy`` then ``.png``; the first existing file wins.
    """
    stems = [Path(row.img).stem, f"{save}/{Path(row.img).stem}"]
    stems += [str(PurePosixPath(n.replace("\\", "/")).with_suffix("")) for n in (row.ori_name, row.name) if n]
    for stem in stems:
        for ext in DEPTH_EXTENSIONS:
            candidate = depth_dir / f"{stem.lstrip('/')}{ext}"
            if candidate.is_file():
                return candidate
    return None


def _raise_rows(index: str, problems: List[str]) -> None:
    """Raise one :class:`InputError` naming the first few bad index rows and counting the rest."""
    if problems:
        more = f"; and {len(problems) - _MAX_LISTED} more" if len(problems) > _MAX_LISTED else ""
        raise InputError(f"{index}: " + "; ".join(problems[:_MAX_LISTED]) + more)


def plan_build(rows: Sequence[IndexRow], sources: Mapping[str, Optional[str]], index: str = "index",
               depth_dir: Optional[str] = None, depth_label: str = GROUND_PLANE) -> List[Task]:
    """Turn index rows into tasks, checking every row first: one error names the bad rows.

    ``sources`` maps ``VeRi-Wild`` / ``Vehicle-1M`` to their image folders (None: not given).
    ``depth_dir`` (optional) must hold a depth file for every synthetic image; otherwise each task
    records ``depth_label`` (an estimator's name or the ground-plane fallback).
    """
    for dataset, folder in sources.items():
        if folder is not None and not Path(folder).is_dir():
            raise InputError(f"{dataset} image folder not found: {folder}")
    if depth_dir is not None and not Path(depth_dir).is_dir():
        raise InputError(f"depth folder not found: {depth_dir}")
    tasks, problems, seen = [], [], {}
    for row in rows:
        where = f"line {row.line} (IMG {row.img or '?'})"
        dataset = _SOURCE_KEYS.get("".join(ch for ch in row.source.lower() if ch.isalnum()))
        save = _save_folder(row.save)
        if dataset is None:
            problems.append(f"{where}: SOURCE '{row.source}' is neither {VERIWILD} nor {VEHICLE1M}")
            continue
        if save is None:
            problems.append(f"{where}: SAVE '{row.save}' is not a folder of the layout "
                            f"({', '.join(FVRID_FOLDERS.values())})")
            continue
        role = folder_role(next(k for k, v in FVRID_FOLDERS.items() if v == save))
        if role.domain == "syn" and role.condition == "foggy":
            problems.append(f"{where}: SAVE '{row.save}' is rendered by this tool, not copied; "
                            "list the clear image in the matching *_clear folder")
            continue
        if not row.img or "/" in row.img or "\\" in row.img or parse_name(row.img) is None:
            problems.append(f"{where}: IMG '{row.img}' is not a file name of the form PID_cCAM_...")
            continue
        if (save, row.img) in seen:
            problems.append(f"{where}: {save}/{row.img} is also written by line {seen[save, row.img]}")
            continue
        seen[save, row.img] = row.line
        root = sources.get(dataset)
        if root is None:
            flag = "--veriwild" if dataset == VERIWILD else "--vehicle1m"
            problems.append(f"{where}: needs the {dataset} images ({flag} DIR)")
            continue
        names = [n.replace("\\", "/").lstrip("/") for n in dict.fromkeys((row.ori_name, row.name)) if n]
        if any(".." in PurePosixPath(n).parts for n in names):
            problems.append(f"{where}: source path leaves the {dataset} folder ('..' in ORI_NAME/NAME)")
            continue
        found = next((n for n in names if (Path(root) / n).is_file()), None)
        if found is None:
            tried = ", ".join(str(Path(root) / n) for n in names) or "ORI_NAME and NAME are empty"
            problems.append(f"{where}: source image not found (tried {tried})")
            continue
        task = Task(row.line, row.img, save, f"{dataset}/{found}", str(Path(root) / found))
        if role.domain == "syn":
            hazy_save = FVRID_FOLDERS[f"SYN_{role.split.upper()}_FOGGY"]
            if depth_dir is not None:
                depth_file = find_depth_file(Path(depth_dir), row, save)
                if depth_file is None:
                    problems.append(f"{where}: no depth file for it in {depth_dir} "
                                    f"(looked for {Path(row.img).stem}.npy/.png)")
                    continue
                label = f"file:{depth_file.relative_to(depth_dir).as_posix()}"
                task = replace(task, hazy_save=hazy_save, depth_path=str(depth_file), depth=label)
            else:
                task = replace(task, hazy_save=hazy_save, depth=depth_label)
        tasks.append(task)
    _raise_rows(index, problems)
    reused = len(tasks) - len({t.source_path for t in tasks})
    if reused:
        logger.warning("%d index rows reuse a source image that another row already uses: "
                       "check_fvrid.py will report the copies as duplicates", reused)
    return tasks


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a hidden temporary file next to ``path``, then rename it into place."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


_ESTIMATORS: Dict[str, object] = {}


def _estimator(spec: str):
    """The depth estimator of ``spec``, built once per process."""
    if spec not in _ESTIMATORS:
        from ..haze.depth import load_estimator

        _ESTIMATORS[spec] = load_estimator(spec)
    return _ESTIMATORS[spec]


def _encode(image_bgr: np.ndarray, name: str) -> bytes:
    """Encode by the extension of ``name`` with fixed parameters (same pixels give the same bytes)."""
    ext = Path(name).suffix.lower()
    params = {".jpg": [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY], ".jpeg": [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY],
              ".png": [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION]}.get(ext, [])
    ok, buf = cv2.imencode(ext, image_bgr, params)
    if not ok:
        raise InputError(f"cannot encode an image as '{ext}': {name}")
    return buf.tobytes()


def _render_hazy(settings: Settings, task: Task, clear_path: Path) -> bytes:
    """Encoded hazy twin of the clear image at ``clear_path`` (atmospheric scattering model)."""
    from ..haze import synthesize
    from ..haze.depth import fit_depth, ground_plane_depth, read_depth_file

    bgr = cv2.imread(str(clear_path), cv2.IMREAD_COLOR)  # as the loaders read it (EXIF orientation applied)
    if bgr is None:
        raise InputError(f"{settings.index} line {task.line} (IMG {task.img}): source image does not decode: "
                         f"{task.source_path}")
    rgb = np.ascontiguousarray(bgr[..., ::-1])
    shape = rgb.shape[:2]
    if task.depth_path:
        depth = fit_depth(read_depth_file(task.depth_path), shape, settings.disparity, where=task.depth_path)
    elif settings.estimator:
        depth = fit_depth(_estimator(settings.estimator).estimate(rgb), shape, settings.disparity,
                          where=f"estimator {settings.estimator} on {task.img}")
    else:
        depth = ground_plane_depth(*shape)
    airlight, beta = haze_params(settings.seed, task.img)
    hazy = synthesize(rgb.astype(np.float64) / 255.0, depth, beta, airlight)
    hazy8 = np.clip(np.rint(hazy * 255.0), 0, 255).astype(np.uint8)
    return _encode(np.ascontiguousarray(hazy8[..., ::-1]), task.img)


def _sha256(path: Path) -> str:
    """Hex SHA-256 of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_task(settings: Settings, task: Task) -> Tuple[List[Dict[str, str]], int]:
    """Produce one task's outputs that do not exist yet; returns their manifest rows and how many were written."""
    out = Path(settings.out)
    written = 0
    clear_rel = f"{task.save}/{task.img}"
    clear_path = out / clear_rel
    if not clear_path.is_file():
        _write_atomic(clear_path, Path(task.source_path).read_bytes())
        written += 1
    rows = [dict(file=clear_rel, kind="copy", index_line=str(task.line), source=task.source, clear_twin="",
                 airlight="", beta="", seed="", depth="", sha256=_sha256(clear_path))]
    if task.hazy_save:
        hazy_rel = f"{task.hazy_save}/{task.img}"
        hazy_path = out / hazy_rel
        if not hazy_path.is_file():
            _write_atomic(hazy_path, _render_hazy(settings, task, clear_path))
            written += 1
        airlight, beta = haze_params(settings.seed, task.img)
        rows.append(dict(file=hazy_rel, kind="haze", index_line=str(task.line), source=task.source,
                         clear_twin=clear_rel, airlight=repr(airlight), beta=repr(beta), seed=str(settings.seed),
                         depth=task.depth, sha256=_sha256(hazy_path)))
    return rows, written


def _check_settings(out: Path, settings: Settings) -> None:
    """Record the build settings in ``out``, or check that a resumed build uses the recorded ones."""
    recorded = {"seed": settings.seed, "depth_mode": settings.depth_mode, "disparity": settings.disparity,
                "jpeg_quality": JPEG_QUALITY, "png_compression": PNG_COMPRESSION}
    path = out / SETTINGS_NAME
    if path.is_file():
        try:
            previous = json.loads(path.read_text())
        except ValueError as exc:
            raise InputError(f"{path} is not valid JSON ({exc}); delete it only if {out} holds no output") from exc
        if previous != recorded:
            diff = ", ".join(f"{k} {previous.get(k)!r} -> {v!r}" for k, v in recorded.items() if previous.get(k) != v)
            raise InputError(f"{out} was built with other settings ({diff}); resume with the same settings "
                             "or build into a new --out")
    else:
        _write_atomic(path, (json.dumps(recorded, indent=2, sort_keys=True) + "\n").encode())


def _clean_partial(out: Path, folders: Sequence[str]) -> None:
    """Remove unfinished writes left by an interrupted build."""
    for rel in folders:
        for stale in (out / rel).glob(f".*{TMP_SUFFIX}"):
            logger.info("removing an unfinished write: %s", stale)
            stale.unlink()


def write_manifest(path: Path, rows: Sequence[Mapping[str, str]]) -> None:
    """Write the manifest atomically, sorted by output file (so equal builds give equal manifests)."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(sorted(rows, key=lambda r: r["file"]))
    _write_atomic(path, text.getvalue().encode())


def build_fvrid(index: Union[str, Path], sources: Mapping[str, Optional[str]], out: Union[str, Path],
                depth_dir: Optional[str] = None, estimator: str = "", disparity: bool = False, seed: int = 0,
                workers: int = 1, progress: bool = True) -> BuildResult:
    """Build (or resume) the FVRID layout in ``out`` from ``index``; returns a :class:`BuildResult`.

    ``sources`` maps ``VeRi-Wild`` / ``Vehicle-1M`` to image folders. Depth of the synthetic images:
    files in ``depth_dir``, else the ``estimator`` (``"module:factory"``, see
    :class:`rvsl.haze.depth.DepthEstimator`), else the ground-plane fallback (logged as such).
    ``disparity`` marks depth files or estimator output as inverse depth (near = large).
    ``workers`` > 1 renders in that many processes; the outputs do not depend on it.
    """
    rows = read_index(index)
    if depth_dir is not None and estimator:
        raise InputError("give depth files or a depth estimator, not both")
    if estimator:
        depth_mode = label = f"estimator:{estimator}"
        _estimator(estimator)  # fail now, in one line, if it does not load
    elif depth_dir is not None:
        depth_mode, label = "files", ""
    else:
        depth_mode = label = GROUND_PLANE
    tasks = plan_build(rows, sources, str(index), depth_dir, label)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    settings = Settings(str(out), str(index), int(seed), depth_mode, bool(disparity), estimator)
    _check_settings(out, settings)
    n_syn = sum(1 for t in tasks if t.hazy_save)
    if n_syn and depth_mode == GROUND_PLANE:
        logger.warning("no depth files and no estimator: the %d synthetic images get the ground-plane fallback "
                       "(depth grows linearly from the bottom row to the top row), not a depth estimate", n_syn)
    if n_syn:
        import_module("rvsl.haze")  # torch, imported once here so that forked workers inherit it
    folders = sorted({t.save for t in tasks} | {t.hazy_save for t in tasks if t.hazy_save})
    for rel in folders:
        (out / rel).mkdir(parents=True, exist_ok=True)
    _clean_partial(out, folders)
    logger.info("building %d images (%d with a hazy twin) into %s with %d worker(s)", len(tasks), n_syn, out, workers)
    manifest_rows: List[Dict[str, str]] = []
    written = 0
    work = partial(run_task, settings)
    bar = tqdm(total=len(tasks), desc="building FVRID", unit="img", disable=not progress)
    pool = ProcessPoolExecutor(max_workers=workers) if workers > 1 else None
    try:
        results = pool.map(work, tasks, chunksize=max(1, min(32, len(tasks) // (workers * 8)))) if pool \
            else map(work, tasks)
        for task_rows, task_written in results:
            manifest_rows.extend(task_rows)
            written += task_written
            bar.update(1)
    except BaseException:
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
            pool = None
        raise
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown()
    manifest = out / MANIFEST_NAME
    write_manifest(manifest, manifest_rows)
    skipped = len(manifest_rows) - written
    logger.info("done: %d files written, %d already there; manifest %s", written, skipped, manifest)
    return BuildResult(written, skipped, str(manifest))
