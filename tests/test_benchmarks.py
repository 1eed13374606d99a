"""The benchmark scripts run end to end in their small CPU modes (the figures themselves are not asserted)."""

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_train_speed_tiny_cpu_mode(tmp_path):
    out = tmp_path / "speed.json"
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "train_speed.py"), "--tiny", "--device", "cpu",
                          "--iters", "2", "--warmup", "1", "--settings", "reference", "ours", "ours-ckpt", "ours-accum2",
                          "--json", str(out)], capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr
    rows = json.loads(out.read_text())["rows"]
    measured = [(r["stage"], r["setting"]) for r in rows]
    assert measured == [(stage, setting) for stage in ("STAGE1", "STAGE3") for setting in ("reference", "ours", "ours-ckpt", "ours-accum2")] \
        + [("extract", "reference"), ("extract", "ours"), ("extract.py", "ours")]
    assert all(r["images_per_s"] > 0 and r["step_s"] > 0 and r["peak_gb"] is None for r in rows)
    # auto is none on the CPU; the explicit policies stay
    assert [r["activation_checkpoint"] for r in rows if r["stage"] == "STAGE1"] == ["none", "none", "all", "none"]
    # the table prints every row side by side, each with its ratio to the reference of its stage
    table = [line for line in run.stdout.splitlines() if line.startswith("| ")]
    assert len(table) == 2 + len(rows)
    assert all(line.split("|")[6].strip().endswith("x") for line in table[2:])
    assert "| STAGE1 | reference |" in run.stdout and "1.00x" in run.stdout


def test_train_speed_profile_writes_a_trace_and_the_parts(tmp_path):
    out, traces = tmp_path / "speed.json", tmp_path / "traces"
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "train_speed.py"), "--tiny", "--device", "cpu",
                          "--iters", "1", "--warmup", "1", "--stages", "STAGE1", "--settings", "ours", "--no-extract",
                          "--profile", "--trace-dir", str(traces), "--json", str(out)],
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr
    trace = traces / "trace_STAGE1.json.gz"
    events = json.loads(gzip.decompress(trace.read_bytes()))["traceEvents"]
    labels = {e["name"] for e in events if e.get("cat") == "user_annotation"}
    assert {"encoder E_C", "encoder E_H", "ReID body", "generator G_H", "generator G_C", "D pass: generator term",
            "D update: passes and loss", "backward (model)", "optimiser step (disc)", "data to device"} <= labels
    parts = {p["part"]: p for p in json.loads(out.read_text())["rows"][0]["profile"]["parts"]}
    assert all(parts[name]["ms_per_iter"] > 0 for name in ("encoder E_H", "ReID body", "generator G_C",
                                                             "D update: passes and loss", "backward (model)"))
    assert sum(p["share"] for p in parts.values()) == pytest.approx(1.0, abs=0.02)
    assert "| STAGE1 part | ms / iteration | share |" in run.stdout and "Self CPU time total" in run.stdout
