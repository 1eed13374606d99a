"""The real command line on generated demo data: training, inference, bad input, kill and resume."""

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from helpers import ROOT, run_cli

# A tiny, fast training setting on top of configs/demo.yml.
FAST = ["MODEL.DEVICE", "cpu", "INPUT.SIZE_TRAIN", "[32, 32]", "INPUT.SIZE_TEST", "[32, 32]", "INPUT.PADDING", "2",
        "DATALOADER.NUM_IDENTITIES", "3", "DATALOADER.NUM_INSTANCES", "2", "DATALOADER.REAL_BATCH_SIZE", "4",
        "SOLVER.WARMUP_LENGTH", "2", "SOLVER.EVAL_PERIOD", "1", "SOLVER.LOG_PERIOD", "5"]


def train_args(stage: int, data: Path, out: Path, *opts: str):
    return [f"RVSL/stage{stage}_trainer.py", "-c", "configs/demo.yml", "DATASETS.DATA_PATH", str(data),
            "OUTPUT_DIR", str(out), *FAST, *opts]


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory) -> Path:
    """Small demo data from the project's own generator (do not modify; copy it)."""
    root = tmp_path_factory.mktemp("demo")
    result = run_cli(["Datasets/make_demo.py", "--out", str(root), "--seed", "0", "--scale", "0.2", "--size", "32"])
    assert result.returncode == 0, result.stderr
    return root


@pytest.fixture(scope="session")
def flawed_run(demo_data, tmp_path_factory):
    """One stage-1 epoch on a copy of the demo data with a stray file, a broken JPEG and a missing twin."""
    data = tmp_path_factory.mktemp("flawed") / "data"
    shutil.copytree(demo_data, data)
    train_clear = data / "FVRID_syn" / "train_clear"
    (train_clear / "Thumbs.db").write_bytes(b"\x00\x01")
    (train_clear / "readme_c1.jpg").write_bytes((next(train_clear.glob("*.jpg"))).read_bytes())
    (train_clear / "00003_c001_999999_0.jpg").write_bytes(b"\xff\xd8 truncated nonsense")
    orphan = sorted((data / "FVRID_syn" / "train_foggy").glob("*.jpg"))[0]
    orphan.unlink()
    out = data.parent / "out"
    result = run_cli(train_args(1, data, out, "SOLVER.MAX_EPOCHS", "1"))
    return result, out, orphan.name


def test_stage1_run_writes_checkpoints_and_logs(flawed_run):
    result, out, _ = flawed_run
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("checkpoint/last.pth", "checkpoint/best.pth", "config.yaml", "log.txt", "history.json", "losses.png"):
        assert (out / name).is_file(), name
    history = json.loads((out / "history.json").read_text())
    assert set(history["epochs"][0]["metrics"]) == {"syn_val", "test_labels"}  # held-out identities; SYN test set
    assert "reid_clear" in (out / "log.txt").read_text()


def test_stray_file_is_skipped_with_a_warning(flawed_run):
    result, _, _ = flawed_run
    assert "not an image file" in result.stderr and "Thumbs.db" in result.stderr
    assert "does not parse" in result.stderr and "readme_c1.jpg" in result.stderr


def test_undecodable_jpeg_is_skipped_with_a_warning(flawed_run):
    result, _, _ = flawed_run
    assert "does not decode" in result.stderr and "00003_c001_999999_0.jpg" in result.stderr


def test_missing_twin_is_skipped_with_a_warning(flawed_run):
    result, _, orphan = flawed_run
    assert "clear image without its hazy twin" in result.stderr and orphan in result.stderr


def test_missing_folder_exits_2_naming_it(demo_data, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(demo_data, data)
    shutil.rmtree(data / "FVRID_clear" / "train_clear")
    result = run_cli(train_args(2, data, tmp_path / "out"))
    assert result.returncode == 2
    assert "train_clear" in result.stderr and "DATASETS.REAL_TRAIN_CLEAR_PATH" in result.stderr
    assert "Traceback" not in result.stderr


def test_wrong_value_type_exits_2_naming_the_key(demo_data, tmp_path):
    result = run_cli(train_args(1, demo_data, tmp_path / "out", "SOLVER.BASE_LR", "fast"))
    assert result.returncode == 2 and "SOLVER.BASE_LR" in result.stderr and "Traceback" not in result.stderr


def test_missing_test_weight_exits_2(demo_data, tmp_path):
    result = run_cli(["RVSL/inference.py", "-t", "-c", "configs/demo.yml", "DATASETS.DATA_PATH", str(demo_data),
                      "TEST.WEIGHT", str(tmp_path / "nope.pth"), "OUTPUT_DIR", str(tmp_path / "out")])
    assert result.returncode == 2 and "TEST.WEIGHT" in result.stderr and "nope.pth" in result.stderr
    assert "Traceback" not in result.stderr


def test_existing_run_is_not_overwritten(flawed_run):
    result, out, _ = flawed_run
    before = (out / "checkpoint" / "last.pth").read_bytes()
    config_before = (out / "config.yaml").read_bytes()
    again = run_cli(train_args(1, out.parent / "data", out, "SOLVER.MAX_EPOCHS", "2"))
    assert again.returncode == 2 and "pass --resume" in again.stderr
    bad = run_cli(train_args(1, out.parent / "data", out, "SOLVER.MAX_EPOCH", "1"))
    assert bad.returncode == 2
    assert (out / "checkpoint" / "last.pth").read_bytes() == before
    assert (out / "config.yaml").read_bytes() == config_before


@pytest.mark.parametrize("test_set", ["SYN", "REAL_FOGGY"])
def test_inference_writes_metrics_json(flawed_run, demo_data, tmp_path, test_set):
    _, out, _ = flawed_run
    result = run_cli(["RVSL/inference.py", "-t", "-c", "configs/demo.yml", "DATASETS.DATA_PATH", str(demo_data),
                      "TEST.DATA", test_set, "TEST.WEIGHT", str(out / "checkpoint" / "best.pth"),
                      "INPUT.SIZE_TEST", "[32, 32]", "OUTPUT_DIR", str(tmp_path)])
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["test_set"] == test_set
    for path in ("clear", "hazy", "fusion"):
        assert set(metrics[path]) == {"mAP", "rank1", "rank5", "rank10", "mINP"}
        assert all(0.0 <= v <= 1.0 for v in metrics[path].values())
    assert ("quality" in metrics) == (test_set == "SYN")
    if test_set == "SYN":  # the same checkpoint on the same set: inference.py repeats the trainer's validation
        recorded = json.loads((out / "history.json").read_text())["epochs"][-1]["metrics"]["test_labels"]
        for branch in ("clear", "hazy", "fusion"):
            for name, value in recorded[branch].items():
                assert metrics[branch][name] == pytest.approx(value, abs=1e-6), (branch, name)


def _wait_for_epoch(out: Path, epoch: int, process: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    history = out / "history.json"
    while time.time() < deadline:
        if history.exists() and any(e["epoch"] >= epoch for e in json.loads(history.read_text())["epochs"]):
            return
        if process.poll() is not None:
            raise AssertionError(f"run ended early: {process.stderr.read()[-2000:]}")
        time.sleep(0.05)
    raise AssertionError("epoch never finished")


def test_kill_and_resume_equals_uninterrupted_run(demo_data, tmp_path):
    """SIGKILL after epoch 1 of 4, then --resume: final weights equal an uninterrupted run's."""
    opts = ("SOLVER.MAX_EPOCHS", "4", "SOLVER.EVAL_PERIOD", "2", "DATALOADER.NUM_WORKERS", "2", "MODE.SEED", "3")
    straight = run_cli(train_args(1, demo_data, tmp_path / "straight", *opts))
    assert straight.returncode == 0, straight.stderr[-3000:]

    out = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, *train_args(1, demo_data, out, *opts)], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _wait_for_epoch(out, 1, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert torch.load(out / "checkpoint" / "last.pth", weights_only=True)["epoch"] < 4
    resumed = run_cli(train_args(1, demo_data, out, *opts) + [])
    assert resumed.returncode == 2  # refuses to start over the killed run without --resume
    resumed = run_cli([train_args(1, demo_data, out, *opts)[0], "--resume", *train_args(1, demo_data, out, *opts)[1:]])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stderr

    a = torch.load(tmp_path / "straight" / "checkpoint" / "last.pth", weights_only=True)
    b = torch.load(out / "checkpoint" / "last.pth", weights_only=True)
    assert a["epoch"] == b["epoch"] == 4
    diff = max((a["model"][k].double() - b["model"][k].double()).abs().max().item() for k in a["model"])
    assert diff <= 1e-6, diff
    assert a["metrics"] == b["metrics"]


def test_stage3_learns_from_unlabelled_frames_alone(demo_data, tmp_path):
    """Real hazy frames with arbitrary names and no real query/gallery: stage 3 trains and writes checkpoints."""
    data = tmp_path / "data"
    shutil.copytree(demo_data, data)
    frames = data / "FVRID_real" / "train_foggy"
    for i, path in enumerate(sorted(frames.iterdir())):
        path.rename(frames / f"frame_{i:04d}.jpg")
    for name in ("query_foggy", "gallery_foggy"):
        shutil.rmtree(data / "FVRID_real" / name)
    out = tmp_path / "out"
    result = run_cli(train_args(3, data, out, "SOLVER.MAX_EPOCHS", "1", "VAL.SYN_IDENTITIES", "3",
                                "VAL.REAL_IMAGES", "8", "SOLVER.BEST_METRIC", "real_proxy/agreement"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert (out / "checkpoint" / "last.pth").is_file() and (out / "checkpoint" / "best.pth").is_file()
    assert "frame_" not in result.stderr and "does not parse" not in result.stderr
    assert result.stderr.count("test set is absent") == 1 and "it will not be evaluated" in result.stderr
    metrics = json.loads((out / "history.json").read_text())["epochs"][0]["metrics"]
    assert set(metrics) == {"syn_val", "real_proxy"}


def test_trainer_refuses_the_inference_flag(tmp_path):
    result = run_cli(["RVSL/stage1_trainer.py", "-t", "-c", "configs/demo.yml", "OUTPUT_DIR", str(tmp_path / "o")])
    assert result.returncode == 2 and "unrecognized arguments: -t" in result.stderr
    assert not (tmp_path / "o").exists()
