"""Planning a build: every index row checked and turned into a :class:`Task` before anything is written.

Rows saved to a synthetic clear folder also get a hazy twin of the same name in the synthetic hazy
folder of the same split (:func:`rvsl.layout.twin`). The source image is ``SOURCE_DIR/ORI_NAME`` if that exists,
else ``SOURCE_DIR/NAME``.
"""

import logging
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import List, Mapping, Optional, Sequence

from rvsl import layout
from rvsl.data.fvrid import parse_name
from rvsl.layout import LayoutFolder
from rvsl.utils.errors import InputError

from .index import IndexRow

logger = logging.getLogger(__name__)

VERIWILD, VEHICLE1M = "VeRi-Wild", "Vehicle-1M"
_SOURCE_KEYS = {"veriwild": VERIWILD, "vehicle1m": VEHICLE1M}
# Depth files looked up per image, in this order of stems and extensions (see :func:`find_depth_file`).
DEPTH_EXTENSIONS = (".npy", ".png")
# Depth source recorded in the manifest when neither files nor an estimator are given.
GROUND_PLANE = "ground-plane-fallback"
_MAX_LISTED = 5


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


def save_folder(save: str) -> Optional[LayoutFolder]:
    """Layout folder whose relative path (:attr:`LayoutFolder.rel`) ``save`` ends with, or None."""
    parts = PurePosixPath(save.replace("\\", "/")).parts
    for folder in layout.FOLDERS:
        rel_parts = PurePosixPath(folder.rel).parts
        if tuple(parts[-len(rel_parts):]) == rel_parts:
            return folder
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
        target = save_folder(row.save)
        if dataset is None:
            problems.append(f"{where}: SOURCE '{row.source}' is neither {VERIWILD} nor {VEHICLE1M}")
            continue
        if target is None:
            problems.append(f"{where}: SAVE '{row.save}' is not a folder of the layout "
                            f"({', '.join(f.rel for f in layout.FOLDERS)})")
            continue
        save = target.rel
        if target.domain == layout.SYN and target.condition == "hazy":
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
        if target.domain == layout.SYN:
            hazy_save = layout.twin(target).rel
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
