"""The benchmark scripts run end to end in their small CPU modes (the figures themselves are not asserted)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_train_speed_tiny_cpu_mode(tmp_path):
    out = tmp_path / "speed.json"
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "train_speed.py"), "--tiny", "--device", "cpu",
                          "--iters", "2", "--warmup", "1", "--settings", "reference", "ours", "ours-ckpt", "ours-accum2",
                          "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    rows = json.loads(out.read_text())["rows"]
    measured = [(r["stage"], r["setting"]) for r in rows]
    assert measured == [(stage, setting) for stage in ("STAGE1", "STAGE3") for setting in ("reference", "ours", "ours-ckpt", "ours-accum2")] \
        + [("extract", "reference"), ("extract", "ours")]
    assert all(r["images_per_s"] > 0 and r["step_s"] > 0 and r["peak_gb"] is None for r in rows)
    # the table prints every row side by side, each with its ratio to the reference of its stage
    table = [line for line in run.stdout.splitlines() if line.startswith("| ")]
    assert len(table) == 2 + len(rows)
    assert all(line.split("|")[6].strip().endswith("x") for line in table[2:])
    assert "| STAGE1 | reference |" in run.stdout and "1.00x" in run.stdout
