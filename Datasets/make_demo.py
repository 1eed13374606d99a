"""Generate a small procedural vehicle dataset in the exact FVRID layout (see fvrid_tools.demo).

Run ``python Datasets/make_demo.py --help`` for the options.
"""

import argparse
import logging
import os
import time
from pathlib import Path
from typing import Optional, Sequence

from fvrid_tools.demo import DEFAULT_SEED, DEFAULT_SIZE, MARKER, build_plan, generate, log_summary, make_figure

logger = logging.getLogger("make_demo")


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(
        description="Write a small procedural vehicle dataset in the FVRID layout (the twelve folders of the "
                    "synthetic, real clear and real hazy domains) under --out, so that every command runs offline.",
        epilog="If --out already holds images in any of the twelve folders the script stops, unless --force: "
               "then, if --out carries the marker " + MARKER + " of an earlier run, the images of that run "
               "(files named PPPPP_cCCC_FFFFFF_K.jpg) in the twelve folders are deleted first; otherwise files "
               "are overwritten in place, nothing is deleted and no marker is written. Nothing outside the "
               "twelve folders is ever deleted. The same --seed (and --size, --scale) gives byte-identical files.")
    p.add_argument("--out", required=True, help="dataset root (e.g. Datasets/demo)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed, >= 0 (default %(default)s)")
    p.add_argument("--size", type=int, default=DEFAULT_SIZE, help="image side in pixels (default %(default)s)")
    p.add_argument("--scale", type=float, default=1.0,
                   help="multiply the identity counts (default %(default)s; 0.1 gives a tiny set for tests)")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                   help="processes (default %(default)s); the output does not depend on it")
    p.add_argument("--force", action="store_true", help="write into a non-empty dataset (see below)")
    p.add_argument("--figure", default=None, help="also write a sample grid PNG here (e.g. Fig/demo_samples.png)")
    args = p.parse_args(argv)
    if args.seed < 0:
        p.error("--seed must be >= 0")
    if args.size < 32:
        p.error("--size must be at least 32")
    if args.scale <= 0:
        p.error("--scale must be > 0")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Generate the dataset (and optionally the figure); log a summary; 2 when --out may not be written."""
    args = parse_args(argv)
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    start = time.perf_counter()
    try:
        stats = generate(Path(args.out), args.seed, args.size, args.scale, args.force, args.workers)
    except FileExistsError as exc:
        logger.error("%s", exc)
        return 2
    log_summary(Path(args.out), stats, time.perf_counter() - start, args.seed, args.size)
    if args.figure:
        make_figure(Path(args.out), Path(args.figure), build_plan(args.seed, args.scale))
        logger.info("figure written to %s", args.figure)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
