"""Running a build: copy each planned image, render the hazy twins, write the manifest; resumable.

Hazy twins use :func:`rvsl.haze.synthesize` and per-image ``A ~ U[0.4, 1.0]``, ``beta ~ U[1.0, 5.0]``
from a generator seeded by ``(seed, IMG)`` alone, so an image's haze does not depend on order or
worker count. Every output is written atomically (:mod:`rvsl.utils.io`), so an existing output is
finished: a rerun skips it and removes unfinished temporary files.
"""

import hashlib
import logging
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from importlib import import_module
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from tqdm import tqdm

from rvsl.utils.errors import InputError
from rvsl.utils.io import TMP_SUFFIX, write_bytes_atomic

from ..imageio import write_image
from .index import read_index
from .manifest import MANIFEST_NAME, check_settings, sha256_file, write_manifest
from .plan import GROUND_PLANE, Task, plan_build

logger = logging.getLogger(__name__)


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


def haze_params(seed: int, name: str) -> Tuple[float, float]:
    """``(airlight, beta)`` of image ``name``: drawn from a generator keyed by ``seed`` and the name only."""
    from rvsl.haze import sample_haze_params  # torch comes with rvsl.haze: imported only once rendering starts

    key = int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:8], "little")
    return sample_haze_params(np.random.default_rng(key))


_ESTIMATORS: Dict[str, object] = {}


def _estimator(spec: str):
    """The depth estimator of ``spec``, built once per process."""
    if spec not in _ESTIMATORS:
        from ..depth import load_estimator

        _ESTIMATORS[spec] = load_estimator(spec)
    return _ESTIMATORS[spec]


def render_hazy(settings: Settings, task: Task, clear_path: Path) -> np.ndarray:
    """BGR uint8 hazy twin of the clear image at ``clear_path`` (atmospheric scattering model)."""
    from rvsl.haze import synthesize

    from ..depth import fit_depth, ground_plane_depth, read_depth_file

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
    return np.ascontiguousarray(hazy8[..., ::-1])


def run_task(settings: Settings, task: Task) -> Tuple[List[Dict[str, str]], int]:
    """Produce one task's outputs that do not exist yet; returns their manifest rows and how many were written."""
    out = Path(settings.out)
    written = 0
    clear_rel = f"{task.save}/{task.img}"
    clear_path = out / clear_rel
    if not clear_path.is_file():
        write_bytes_atomic(clear_path, Path(task.source_path).read_bytes())
        written += 1
    rows = [dict(file=clear_rel, kind="copy", index_line=str(task.line), source=task.source, clear_twin="",
                 airlight="", beta="", seed="", depth="", sha256=sha256_file(clear_path))]
    if task.hazy_save:
        hazy_rel = f"{task.hazy_save}/{task.img}"
        hazy_path = out / hazy_rel
        if not hazy_path.is_file():
            write_image(hazy_path, render_hazy(settings, task, clear_path))
            written += 1
        airlight, beta = haze_params(settings.seed, task.img)
        rows.append(dict(file=hazy_rel, kind="haze", index_line=str(task.line), source=task.source,
                         clear_twin=clear_rel, airlight=repr(airlight), beta=repr(beta), seed=str(settings.seed),
                         depth=task.depth, sha256=sha256_file(hazy_path)))
    return rows, written


def _clean_partial(out: Path, folders: Sequence[str]) -> None:
    """Remove unfinished writes left by an interrupted build."""
    for rel in folders:
        for stale in (out / rel).glob(f".*{TMP_SUFFIX}"):
            logger.info("removing an unfinished write: %s", stale)
            stale.unlink()


def build_fvrid(index: Union[str, Path], sources: Mapping[str, Optional[str]], out: Union[str, Path],
                depth_dir: Optional[str] = None, estimator: str = "", disparity: bool = False, seed: int = 0,
                workers: int = 1, progress: bool = True) -> BuildResult:
    """Build (or resume) the FVRID layout in ``out`` from ``index``; returns a :class:`BuildResult`.

    ``sources`` maps ``VeRi-Wild`` / ``Vehicle-1M`` to image folders. Depth of the synthetic images:
    files in ``depth_dir``, else the ``estimator`` (``"module:factory"``, see
    :class:`fvrid_tools.depth.DepthEstimator`), else the ground-plane fallback (logged as such).
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
    check_settings(out, settings.seed, settings.depth_mode, settings.disparity)
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
