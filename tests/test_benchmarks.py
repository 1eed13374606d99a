"""The benchmark scripts run end to end in their small CPU modes (the figures themselves are not asserted)."""

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = ("reference", "ours", "ours-ckpt", "ours-accum2")


def test_train_speed_tiny_cpu_mode(tmp_path):
    out = tmp_path / "speed.json"
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "train_speed.py"), "--tiny", "--device", "cpu",
                          "--iters", "2", "--warmup", "1", "--settings", *SETTINGS,
                          "--json", str(out)], capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr
    rows = json.loads(out.read_text())["rows"]
    measured = [(r["stage"], r["setting"]) for r in rows]
    assert measured == [(stage, setting) for stage in ("STAGE1", "STAGE3") for setting in SETTINGS] \
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


def test_adaptation_paired_intervals_match_seeds():
    """Paired differences pair the same seeds (a variant missing a seed is paired on the others), t-interval 95 %."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import adaptation
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    metrics = lambda v: {b: {"mAP": v, "rank1": v / 2} for b in adaptation.BRANCHES}  # noqa: E731
    per_seed = {0: {"stage1": metrics(0.10), "rvsl": metrics(0.15)},
                1: {"stage1": metrics(0.12), "rvsl": metrics(0.19), "control": metrics(0.30)},
                2: {"stage1": metrics(0.11), "rvsl": metrics(0.17), "control": metrics(0.20)}}
    table = adaptation.collect(per_seed)
    assert list(table) == ["stage1", "control", "rvsl"]                      # the order of VARIANTS
    assert table["control"]["seeds"] == [1, 2] and table["rvsl"]["hazy"] == [0.15, 0.19, 0.17]
    assert table["stage1"]["hazy_rank1"] == [0.05, 0.06, 0.055]
    mean, low, high = adaptation.paired(table["rvsl"]["hazy"], table["stage1"]["hazy"])
    assert abs(mean - 6.0) < 1e-9                                            # 5, 7, 6 points
    assert abs((high - low) / 2 - 4.303 * 1.0 / 3 ** 0.5) < 1e-9             # t(0.975, 2) * sd / sqrt(n)
    diffs = adaptation.print_table("test", table, (0.088, 0.016))
    assert diffs["control"]["seeds"] == 2 and abs(diffs["control"]["mean"] - (-7.0)) < 1e-9  # -11, -3 points
    assert adaptation.paired([0.2], [0.1]) is None


def test_adaptation_steps_give_each_stage_its_drop():
    """--steps S1 S2 S3 sets each stage's SOLVER.STEPS (0: no drop), and the config accepts both forms."""
    from argparse import Namespace

    from rvsl.config import load_config

    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import adaptation
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    args = Namespace(steps=[14, 0, 4])
    assert [adaptation.steps(args, n) for n in (1, 2, 3)] == [["SOLVER.STEPS", "[14]"], ["SOLVER.STEPS", "[]"],
                                                             ["SOLVER.STEPS", "[4]"]]
    for n in (1, 2, 3):
        cfg = load_config(str(ROOT / "configs/adaptation.yml"), adaptation.steps(args, n), stage=f"STAGE{n}")
        assert list(cfg.SOLVER.STEPS) == ([14], [], [4])[n - 1]


def test_adaptation_resume_counts_only_finished_runs(tmp_path):
    """--resume/--report take a run whose history reaches its last epoch, never an interrupted one."""
    from argparse import Namespace

    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import adaptation
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))

    def fake_run(folder: str, epochs: int) -> None:
        (tmp_path / "seed0" / folder / "checkpoint").mkdir(parents=True)
        (tmp_path / "seed0" / folder / "checkpoint" / "best.pth").write_bytes(b"")
        history = {"epochs": [{"epoch": e} for e in range(1, epochs + 1)]}
        (tmp_path / "seed0" / folder / "history.json").write_text(json.dumps(history))

    fake_run("stage1", 20)
    fake_run("control", 25)                    # interrupted: 28 wanted
    fake_run("stage2", 2)
    fake_run("stage3", 6)
    fake_run("stage3_no_ec", 3)                # interrupted
    (tmp_path / "seed0" / "adabn").mkdir()
    (tmp_path / "seed0" / "adabn" / "adabn.pth").write_bytes(b"")
    (tmp_path / "seed0" / "rvsl_adabn").mkdir()  # AdaBN not finished: no file
    args = Namespace(out=tmp_path, epochs=[20, 2, 6], variants=list(adaptation.VARIANTS))
    found = adaptation.trained_weights(0, args)
    assert sorted(found) == ["adabn", "rvsl", "stage1", "stage2"]
    assert found["rvsl"] == tmp_path / "seed0" / "stage3" / "checkpoint" / "best.pth"
    assert list(adaptation.variants_of(found, args)) == ["stage1", "adabn", "rvsl"]


def test_adaptation_choice_study_reads_the_dev_split_and_scores_candidates(tmp_path):
    """--choice-study points stage 3's test keys at the dev folders; regret is the dev mAP lost by each choice."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import adaptation
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    pairs = dict(zip(adaptation.DEV_AS_TEST[::2], adaptation.DEV_AS_TEST[1::2]))
    assert pairs == {"DATASETS.REAL_QUERY_FOGGY_PATH": "FVRID_real/dev_query_foggy",
                     "DATASETS.REAL_GALLERY_FOGGY_PATH": "FVRID_real/dev_gallery_foggy"}
    dev = [0.10, 0.30, 0.20]                   # the best epoch is the 2nd
    knn = [0.5, 0.9, 0.7]                      # ranks the epochs as dev does
    epochs = [{"epoch": e + 1, "metrics": {"test_labels": {"hazy": {"mAP": d}},
                                           "real_proxy": {"knn_overlap": k}}} for e, (d, k) in enumerate(zip(dev, knn))]
    (tmp_path / "history.json").write_text(json.dumps({"epochs": epochs}))
    study = adaptation.choice_study([tmp_path / "history.json"], "test_labels/hazy/mAP")
    assert study["real_proxy/knn_overlap"] == {"spearman": pytest.approx(1.0), "regret": 0.0, "runs": 1}
    assert study["last"]["regret"] == pytest.approx(10.0)   # epoch 3: 30 - 20 points
    assert study["last"]["spearman"] == pytest.approx(0.5)  # ranks 1 2 3 against 1 3 2
    assert study["syn_val/hazy/mAP"]["runs"] == 0           # not in the history: left out
