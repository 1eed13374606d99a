"""Build the FVRID layout from VeRi-Wild / Vehicle-1M and an index CSV, rendering synthetic haze (offline).

Example:
    python Datasets/build_fvrid.py --index FVRID.csv --veriwild VeRi-Wild/images \
        --vehicle1m Vehicle-1M/image --out Datasets --workers 8
Rerun the same command to resume; see Datasets/README.md.
"""

import argparse
import logging
import sys

from fvrid_tools.builder import VEHICLE1M, VERIWILD, build_fvrid
from rvsl.utils.errors import InputError
from rvsl.utils.logger import setup_logger


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", required=True, help="FVRID index CSV (columns IMG, NAME, SOURCE, SAVE, ORI_NAME)")
    parser.add_argument("--veriwild", help="VeRi-Wild image folder (needed if the index has VeRi-Wild rows)")
    parser.add_argument("--vehicle1m", help="Vehicle-1M image folder (needed if the index has Vehicle-1M rows)")
    parser.add_argument("--out", required=True, help="output folder (gets the twelve folders of the layout)")
    depth = parser.add_mutually_exclusive_group()
    depth.add_argument("--depth", help="folder of per-image depth maps (.npy or 16-bit .png, any scale)")
    depth.add_argument("--depth-estimator", default="", metavar="MODULE:FACTORY",
                       help="monocular estimator with local weights (see fvrid_tools.depth.DepthEstimator)")
    parser.add_argument("--disparity", action="store_true",
                        help="depth maps / estimator output are inverse depth (near = large)")
    parser.add_argument("--seed", type=int, default=0, help="haze seed (per image: seed and file name)")
    parser.add_argument("--workers", type=int, default=1, help="parallel processes")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    return args


def main(argv=None) -> int:
    """Run the build; 0 on success, 2 on bad input, 130 when interrupted."""
    args = parse_args(argv)
    setup_logger()
    try:
        result = build_fvrid(args.index, {VERIWILD: args.veriwild, VEHICLE1M: args.vehicle1m}, args.out,
                             depth_dir=args.depth, estimator=args.depth_estimator, disparity=args.disparity,
                             seed=args.seed, workers=args.workers, progress=not args.no_progress)
    except InputError as exc:
        print(f"build_fvrid: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("build_fvrid: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    logging.getLogger("rvsl").info("next: python Datasets/check_fvrid.py %s", args.out)
    print(f"built {args.out}: {result.written} files written, {result.skipped} already there; "
          f"manifest {result.manifest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
