"""Writing the demo dataset: the output folder's rules (refuse, --force, marker) and the render loop."""

import json
import logging
import multiprocessing as mp
import re
from pathlib import Path
from typing import Dict, List, Tuple

import cv2

from rvsl import layout
from rvsl.utils.io import write_bytes_atomic

from .drawing import vehicle_textures
from .plan import DEFAULT_SEED, DEFAULT_SIZE, Job, build_plan
from .scenes import camera_layer, make_camera
from .style import render_job

logger = logging.getLogger("make_demo")

MARKER = ".make_demo.json"    # written in DIR: marks a dataset made by this generator
# File names the generator writes (PPPPP_cCCC_FFFFFF_K.jpg): the only files --force deletes.
DEMO_NAME = re.compile(r"^\d{5}_c\d{3}_\d{6}_\d+\.jpg$")


def prepare_out(out: Path, force: bool) -> bool:
    """Check that ``out`` may be written (see the CLI's help) and create the twelve folders; with ``force``,
    clear the images of an earlier run of this generator. Returns whether ``out`` is ours (new, or made by us)."""
    existing = [out / f.rel for f in layout.FOLDERS if (out / f.rel).is_dir() and any((out / f.rel).iterdir())]
    ours = not existing or (out / MARKER).is_file()
    if existing and not force:
        raise FileExistsError(f"{out} already holds a dataset ({existing[0]} is not empty); "
                              "pass --force to overwrite it")
    if existing and ours:
        removed = 0
        for folder in existing:
            for p in folder.iterdir():
                if p.is_file() and DEMO_NAME.match(p.name):
                    p.unlink()
                    removed += 1
        logger.info("--force: removed %d images of an earlier demo dataset in %s", removed, out)
    elif existing:
        logger.warning("--force: %s was not made by this script; overwriting files in place, deleting none", out)
    for f in layout.FOLDERS:
        (out / f.rel).mkdir(parents=True, exist_ok=True)
    return ours


def _render_group(task: Tuple[int, int, List[Job]]) -> List[Tuple[Job, str, bytes]]:
    """Render the images of one identity: ``(job, condition, jpeg bytes)`` in plan order."""
    seed, size, jobs = task
    return [(job, condition, data) for job in jobs for condition, data in render_job(seed, job, size).items()]


def generate(out: Path, seed: int = DEFAULT_SEED, size: int = DEFAULT_SIZE, scale: float = 1.0,
             force: bool = False, workers: int = 1) -> Dict[str, Tuple[int, int, int, int]]:
    """Write the whole dataset under ``out``; returns per folder (images, identities, cameras, bytes).

    The files do not depend on ``workers``: every image has its own random stream.
    """
    out = Path(out)
    ours = prepare_out(out, force)
    groups: Dict[Tuple[str, int], List[Job]] = {}
    for job in build_plan(seed, scale):
        groups.setdefault((job.src.domain, job.pid), []).append(job)
    tasks = [(seed, size, jobs) for jobs in groups.values()]
    stats: Dict[str, List] = {}

    def write(results: List[Tuple[Job, str, bytes]]) -> None:
        """Write one identity's files and count them."""
        for job, condition, data in results:
            rel = job.folder(condition).rel
            write_bytes_atomic(out / rel / job.name, data)
            st = stats.setdefault(rel, [0, set(), set(), 0])
            st[0] += 1
            st[1].add(job.pid)
            st[2].add(job.cam)
            st[3] += len(data)

    if workers > 1 and "fork" in mp.get_all_start_methods():
        # forked workers inherit a single OpenCV thread (the pool already uses the cores; calling
        # cv2.setNumThreads inside a forked child can hang), the parent gets its setting back
        n_threads = cv2.getNumThreads()
        cv2.setNumThreads(1)
        try:
            pool = mp.get_context("fork").Pool(workers)
        finally:
            cv2.setNumThreads(n_threads)
        with pool:
            for results in pool.imap(_render_group, tasks, chunksize=4):
                write(results)
    else:
        for task in tasks:
            write(_render_group(task))
    if ours:  # never mark a foreign dataset as ours: a later --force would delete its images
        marker = {"generator": "Datasets/make_demo.py", "seed": seed, "size": size, "scale": scale}
        write_bytes_atomic(out / MARKER, (json.dumps(marker, sort_keys=True) + "\n").encode())
    for fn in (vehicle_textures, make_camera, camera_layer):
        fn.cache_clear()
    return {k: (v[0], len(v[1]), len(v[2]), v[3]) for k, v in sorted(stats.items())}


def log_summary(out: Path, stats: Dict[str, Tuple[int, int, int, int]], seconds: float, seed: int,
                size: int) -> None:
    """Log the per-folder counts of :func:`generate` and the totals."""
    logger.info("%-26s %7s %6s %5s %9s", "folder", "images", "ids", "cams", "KB")
    for rel, (n, ids, cams, nbytes) in stats.items():
        logger.info("%-26s %7d %6d %5d %9.1f", rel, n, ids, cams, nbytes / 1024)
    total = sum(s[3] for s in stats.values())
    logger.info("wrote %d images (%.1f MB) to %s in %.1f s (seed %d, size %d)",
                sum(s[0] for s in stats.values()), total / 2 ** 20, out, seconds, seed, size)
