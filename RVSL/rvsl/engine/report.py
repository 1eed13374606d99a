"""Print one table of several ``metrics.json`` files: ``python -m rvsl.engine.report FILE...``."""

import json
import logging
import sys
from typing import List, Sequence

COLUMNS = ("mAP", "rank1", "rank5", "rank10", "mINP")


def metrics_table(paths: Sequence[str]) -> str:
    """One row per test set and feature branch, values in percent."""
    rows: List[str] = [f"{'test set':<11} {'branch':<7} " + " ".join(f"{c:>7}" for c in COLUMNS)]
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            result = json.load(handle)
        for branch in ("clear", "hazy", "fusion"):
            values = result[branch]
            rows.append(f"{result['test_set']:<11} {branch:<7} " +
                        " ".join(f"{100 * values[c]:7.2f}" for c in COLUMNS))
        if "quality" in result:
            rows.append(f"{result['test_set']:<11} quality " +
                        "  ".join(f"{k} {v:.4f}" for k, v in sorted(result["quality"].items())))
    return "\n".join(rows)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger(__name__).info("%s", metrics_table(sys.argv[1:]))
