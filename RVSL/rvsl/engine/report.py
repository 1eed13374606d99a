"""Metrics as text: one evaluation (:func:`format_metrics`), or a table of several ``metrics.json`` files
(:func:`metrics_table`, which ``test.sh`` prints)."""

import json
from typing import Dict, List, Sequence

from ..evaluation.evaluator import RANKED_BRANCHES as BRANCHES

COLUMNS = ("mAP", "rank1", "rank5", "rank10", "mINP")
HEADER = f"{'branch':<7} " + " ".join(f"{c:>7}" for c in COLUMNS)


def _rows(metrics: Dict, prefix: str = "") -> List[str]:
    """A row per branch present (values in percent), then the image quality if present."""
    rows = [f"{prefix}{branch:<7} " + " ".join(f"{100 * metrics[branch][c]:7.2f}" for c in COLUMNS)
            for branch in BRANCHES if branch in metrics]
    if "quality" in metrics:
        rows.append(f"{prefix}quality " + "  ".join(f"{k} {v:.4f}" for k, v in sorted(metrics["quality"].items())))
    return rows


def format_metrics(metrics: Dict) -> str:
    """One evaluation's metrics: a header, then a row per branch and the image quality."""
    return "\n".join([HEADER, *_rows(metrics)])


def metrics_table(paths: Sequence[str]) -> str:
    """One row per test set and feature branch of several ``metrics.json`` files."""
    rows: List[str] = [f"{'test set':<11} {HEADER}"]
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            result = json.load(handle)
        rows += _rows(result, f"{result['test_set']:<11} ")
    return "\n".join(rows)

