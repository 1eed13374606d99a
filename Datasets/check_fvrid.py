"""Check a dataset in the FVRID layout and report what is wrong with it, before training on it.

Exit status: 0 clean, 1 problems found (listed), 2 bad arguments. See Datasets/README.md.
"""

import argparse
import json
import sys

from fvrid_tools.check import check_dataset, format_report
from rvsl.data.check import select_layout
from rvsl.layout import DOMAINS
from rvsl.utils.errors import InputError
from rvsl.utils.logger import setup_logger


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", metavar="DIR", help="dataset root (the layout's folders lie under it)")
    parser.add_argument("--json", action="store_true", help="print the full report as JSON")
    depth = parser.add_mutually_exclusive_group()
    depth.add_argument("--full", action="store_true",
                       help="decode every image in full, check twin sizes and duplicates (the default)")
    depth.add_argument("--fast", action="store_true",
                       help="skip the decode, size and duplicate checks (what the trainers run: image headers only)")
    parser.add_argument("--domain", action="append", choices=DOMAINS,
                        help="check only this domain (repeatable): synthetic, real clear or real hazy images")
    parser.add_argument("--workers", type=int, default=1, help="processes decoding images")
    parser.add_argument("--max-listed", type=int, default=5, help="files listed per kind of problem")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    """Run the check; 0 when clean, 1 with problems, 2 on bad input."""
    args = parse_args(argv)
    setup_logger()
    try:
        layout = select_layout(args.domain) if args.domain else None
        report = check_dataset(args.root, layout, fast=args.fast, workers=max(1, args.workers),
                               progress=not args.json and sys.stderr.isatty())
    except InputError as exc:
        print(f"check_fvrid: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report.to_dict(), indent=2) if args.json else format_report(report, args.max_listed))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
