"""The real command line on generated demo data: training, inference, bad input, kill and resume."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from helpers import ROOT, run_cli, tiny_opts
from rvsl.utils.io import TMP_SUFFIX

# A tiny, fast training setting on top of configs/demo.yml: configs/tiny.yml laid over it, and a short warm-up,
# validation every epoch and frequent logging.
FAST = [*tiny_opts(), "SOLVER.WARMUP_LENGTH", "2", "SOLVER.EVAL_PERIOD", "1", "SOLVER.LOG_PERIOD", "5"]


def train_args(stage: int, data: Path, out: Path, *opts: str):
    return [f"RVSL/stage{stage}_trainer.py", "-c", "configs/demo.yml", "DATASETS.DATA_PATH", str(data),
            "OUTPUT_DIR", str(out), *FAST, *opts]


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


# Values that type-check but cannot work, each refused at start-up with its key (or file) named: (stage, KEY VALUE
# pairs, a fragment of the one-line message). {tmp} is the test's folder.
CANNOT_WORK = {
    "size the generators cannot reproduce": (1, ("INPUT.SIZE_TRAIN", "[34, 34]"), "INPUT.SIZE_TRAIN must be"),
    "more identities than the data has": (1, ("DATALOADER.NUM_IDENTITIES", "500"), "DATALOADER.NUM_IDENTITIES: P x K"),
    "more held-out identities than exist": (1, ("VAL.SYN_IDENTITIES", "500"), "VAL.SYN_IDENTITIES is 500 but"),
    "an empty data folder": (1, ("DATASETS.SYN_TRAIN_CLEAR_PATH", "{tmp}/empty"), "no usable image in {tmp}/empty"),
    "a text file as MODEL.PRETRAIN_PATH": (1, ("MODEL.PRETRAIN_PATH", "{tmp}/notes.pth"),
                                           "MODEL.PRETRAIN_PATH: {tmp}/notes.pth is not a loadable checkpoint"),
    "a truncated MODEL.PRETRAIN_PATH": (1, ("MODEL.PRETRAIN_PATH", "{tmp}/cut.pth"),
                                        "MODEL.PRETRAIN_PATH: {tmp}/cut.pth is not a loadable checkpoint"),
    "a real batch of one": (2, ("DATALOADER.REAL_BATCH_SIZE", "1"),
                            "DATALOADER.REAL_BATCH_SIZE is 1: a training batch of one real image leaves the BatchNorm "
                            "layers one value per channel"),
    "a synthetic batch of one": (1, ("DATALOADER.NUM_IDENTITIES", "1", "DATALOADER.NUM_INSTANCES", "1"),
                                 "DATALOADER.NUM_IDENTITIES x DATALOADER.NUM_INSTANCES is 1"),
}


@pytest.mark.parametrize("case", list(CANNOT_WORK))
def test_values_that_cannot_work_exit_2_naming_the_key(demo_data, tmp_path, case):
    stage, opts, fragment = CANNOT_WORK[case]
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.pth").write_text("not a checkpoint\n")
    torch.save({"weight": torch.zeros(1000)}, tmp_path / "full.pth")
    (tmp_path / "cut.pth").write_bytes((tmp_path / "full.pth").read_bytes()[:2000])
    opts = [value.format(tmp=tmp_path) for value in opts]
    result = run_cli(train_args(stage, demo_data, tmp_path / "out", *opts))
    assert result.returncode == 2, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if " ERROR: " in line]
    assert len(errors) == 1 and fragment.format(tmp=tmp_path) in errors[0], result.stderr[-3000:]
    assert "Traceback" not in result.stderr


def test_values_that_look_odd_but_work_train(demo_data, tmp_path):
    """One instance per identity, unsorted LR steps and a test batch of one: the run trains and validates."""
    result = run_cli(train_args(1, demo_data, tmp_path / "out", "SOLVER.MAX_EPOCHS", "1",
                                "DATALOADER.NUM_INSTANCES", "1", "DATALOADER.NUM_IDENTITIES", "4",
                                "SOLVER.STEPS", "[30, 20]", "TEST.IMS_PER_BATCH", "1"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert torch.load(tmp_path / "out" / "checkpoint" / "last.pth", weights_only=True)["epoch"] == 1


def test_diverging_loss_is_warned_and_a_broken_model_stops_the_run(demo_data, tmp_path):
    """SOLVER.BASE_LR 1e8: a warning while the losses grow, still finite; then the synthetic validation finds
    features that overflow float32 and the run stops (exit 1, one line, no traceback) before that epoch's
    checkpoint is written."""
    data = tmp_path / "data"
    shutil.copytree(demo_data, data)
    shutil.rmtree(data / "FVRID_syn" / "query_foggy")  # no SYN test set: the validation split finds it
    out = tmp_path / "out"
    result = run_cli(train_args(1, data, out, "SOLVER.MAX_EPOCHS", "1", "SOLVER.BASE_LR", "1e8",
                                "SOLVER.BEST_METRIC", "last", "SOLVER.LOG_PERIOD", "2"))
    assert result.returncode == 1, result.stderr[-3000:]
    assert "the loss grew from" in result.stderr and "is SOLVER.BASE_LR too high?" in result.stderr
    assert "non-finite" not in result.stderr[:result.stderr.index("the loss grew from")]
    assert "validation after epoch 1:" in result.stderr and "features that are NaN, inf or too large" in result.stderr
    assert "the model has diverged" in result.stderr and "no checkpoint was written" in result.stderr
    assert "Traceback" not in result.stderr and not (out / "checkpoint" / "last.pth").exists()


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


def test_auto_resume_continues_a_finished_run_and_changes_nothing(flawed_run, tmp_path):
    """train.sh's --auto-resume: with last.pth present it resumes (a finished run returns at once, its checkpoint
    untouched) instead of refusing as a plain start does."""
    _, out, _ = flawed_run
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    before = (copy / "checkpoint" / "last.pth").read_bytes()
    args = train_args(1, out.parent / "data", copy, "SOLVER.MAX_EPOCHS", "1")
    result = run_cli([args[0], "--auto-resume", *args[1:]])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resumed from" in result.stderr
    assert (copy / "checkpoint" / "last.pth").read_bytes() == before


def _corrupt_huffman_table(path: Path) -> None:
    """Break the first Huffman table of a JPEG: its header still opens (the start-up check passes it), its data
    no longer decodes."""
    data = bytearray(path.read_bytes())
    table = data.find(b"\xff\xc4")
    data[table + 5:table + 21] = b"\xff" * 16
    path.write_bytes(bytes(data))


def test_image_that_breaks_mid_run_stops_with_one_line_and_keeps_the_checkpoint(demo_data, tmp_path):
    """An image whose header opens but whose data does not decode, met by a loader worker in epoch 2: exit 2 with
    one line naming the file (no worker traceback), epoch 1's checkpoint intact; check_fvrid.py --full finds it."""
    data, out = tmp_path / "data", tmp_path / "out"
    shutil.copytree(demo_data, data)
    args = train_args(1, data, out, "SOLVER.MAX_EPOCHS", "1", "DATALOADER.NUM_WORKERS", "1")
    assert run_cli(args).returncode == 0
    before = (out / "checkpoint" / "last.pth").read_bytes()
    bad = sorted((data / "FVRID_syn" / "train_foggy").glob("*.jpg"))[3]
    _corrupt_huffman_table(bad)

    result = run_cli([args[0], "--resume", *args[1:], "SOLVER.MAX_EPOCHS", "2"])
    assert result.returncode == 2, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if " ERROR: " in line]
    assert errors and errors[0].endswith(f"error: image does not decode: {bad}") and len(errors) == 1
    assert "Traceback" not in result.stderr and "DataLoader worker" not in result.stderr
    assert (out / "checkpoint" / "last.pth").read_bytes() == before

    check = run_cli(["Datasets/check_fvrid.py", "--full", str(data)])
    assert check.returncode == 1 and bad.name in check.stdout and "undecodable" in check.stdout


@pytest.mark.parametrize("test_set", ["SYN", "REAL_FOGGY"])
def test_inference_writes_metrics_json(flawed_run, demo_data, tmp_path, test_set):
    _, out, _ = flawed_run
    result = run_cli(["RVSL/inference.py", "-t", "-c", "configs/demo.yml", "DATASETS.DATA_PATH", str(demo_data),
                      "TEST.DATA", test_set, "TEST.WEIGHT", str(out / "checkpoint" / "best.pth"),
                      "INPUT.SIZE_TEST", "[32, 32]", "OUTPUT_DIR", str(tmp_path)])
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["test_set"] == test_set
    for path in ("clear", "hazy", "fused"):
        assert set(metrics[path]) == {"mAP", "rank1", "rank5", "rank10", "mINP"}
        assert all(0.0 <= v <= 1.0 for v in metrics[path].values())
    assert ("quality" in metrics) == (test_set == "SYN")
    if test_set == "SYN":  # the same checkpoint on the same set: inference.py repeats the trainer's validation
        recorded = json.loads((out / "history.json").read_text())["epochs"][-1]["metrics"]["test_labels"]
        for branch in ("clear", "hazy", "fused"):
            for name, value in recorded[branch].items():
                assert metrics[branch][name] == pytest.approx(value, abs=1e-6), (branch, name)


def test_inference_reads_at_the_checkpoints_size_unless_given(flawed_run, demo_data, tmp_path):
    """The checkpoint was trained and validated at 32 x 32 and configs/demo.yml says 64 x 64: inference.py reads
    at 32 x 32 (repeating the trainer's validation) unless INPUT.SIZE_TEST is on the command line."""
    _, out, _ = flawed_run
    base = ["RVSL/inference.py", "-t", "-c", "configs/demo.yml", "DATASETS.DATA_PATH", str(demo_data),
            "TEST.DATA", "SYN", "TEST.WEIGHT", str(out / "checkpoint" / "best.pth"), "MODEL.DEVICE", "cpu"]
    own = run_cli([*base, "OUTPUT_DIR", str(tmp_path / "own")])
    assert own.returncode == 0, own.stderr[-3000:]
    assert "input size 32x32 (the model's INPUT.SIZE_TEST)" in own.stderr
    metrics = json.loads((tmp_path / "own" / "metrics.json").read_text())
    assert metrics["input_size"] == [32, 32]
    recorded = json.loads((out / "history.json").read_text())["epochs"][-1]["metrics"]["test_labels"]
    assert metrics["fused"]["mAP"] == pytest.approx(recorded["fused"]["mAP"], abs=1e-6)

    given = run_cli([*base, "INPUT.SIZE_TEST", "[48, 48]", "OUTPUT_DIR", str(tmp_path / "given")])
    assert given.returncode == 0, given.stderr[-3000:]
    assert "input size 48x48 (INPUT.SIZE_TEST given; the model's own is 32x32)" in given.stderr
    assert json.loads((tmp_path / "given" / "metrics.json").read_text())["input_size"] == [48, 48]


def test_inference_of_a_broken_checkpoint_exits_2_naming_it(flawed_run, demo_data, tmp_path):
    """A checkpoint with a NaN weight: inference.py says which file gives unusable features, exit 2, no traceback."""
    _, out, _ = flawed_run
    checkpoint = torch.load(out / "checkpoint" / "best.pth", map_location="cpu", weights_only=False)
    first = next(k for k, v in checkpoint["model"].items() if v.is_floating_point())
    checkpoint["model"][first].fill_(float("nan"))
    broken = tmp_path / "broken.pth"
    torch.save(checkpoint, broken)
    result = run_cli(["RVSL/inference.py", "-t", "-c", "configs/demo.yml", "DATASETS.DATA_PATH", str(demo_data),
                      "TEST.DATA", "SYN", "TEST.WEIGHT", str(broken), "OUTPUT_DIR", str(tmp_path / "out")])
    assert result.returncode == 2, result.stderr[-3000:]
    assert f"TEST.WEIGHT {broken}:" in result.stderr and "NaN, inf or too large" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "out" / "metrics.json").exists()


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


# The run that the kill-and-resume and the SIGTERM tests interrupt (4 epochs, 2 loader workers).
RESUMED_RUN = ("SOLVER.MAX_EPOCHS", "4", "SOLVER.EVAL_PERIOD", "2", "DATALOADER.NUM_WORKERS", "2", "MODE.SEED", "3")


@pytest.fixture(scope="module")
def straight_run(demo_data, tmp_path_factory) -> Path:
    """The final checkpoint of the uninterrupted run of :data:`RESUMED_RUN`."""
    out = tmp_path_factory.mktemp("straight")
    straight = run_cli(train_args(1, demo_data, out, *RESUMED_RUN))
    assert straight.returncode == 0, straight.stderr[-3000:]
    return out / "checkpoint" / "last.pth"


def _assert_same_final_weights(straight: Path, resumed: Path) -> None:
    a, b = torch.load(straight, weights_only=True), torch.load(resumed, weights_only=True)
    assert a["epoch"] == b["epoch"] == 4
    diff = max((a["model"][k].double() - b["model"][k].double()).abs().max().item() for k in a["model"])
    assert diff <= 1e-6, diff
    assert a["metrics"] == b["metrics"]


def test_kill_and_resume_equals_uninterrupted_run(demo_data, tmp_path, straight_run):
    """SIGKILL after epoch 1 of 4, then --resume: final weights equal an uninterrupted run's."""
    opts = RESUMED_RUN
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
    _assert_same_final_weights(straight_run, out / "checkpoint" / "last.pth")


def test_sigterm_stops_at_an_iteration_and_resumes_exactly(demo_data, tmp_path, straight_run):
    """SIGTERM to the whole process group (as a scheduler sends it, the loader workers included) during epoch 2
    of 4: exit 143 at the next iteration, epoch 1's checkpoint intact, no partial file, the --resume command in
    the log; resuming gives the uninterrupted run's weights."""
    out = tmp_path / "stopped"
    args = train_args(1, demo_data, out, *RESUMED_RUN, "SOLVER.LOG_PERIOD", "1")  # logging leaves the numbers alone
    process = subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True, start_new_session=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    for line in process.stderr:  # the first log line of epoch 2's iterations
        if "epoch 2 iter " in line:
            break
    else:
        raise AssertionError(f"run ended early ({process.wait()})")
    os.killpg(process.pid, signal.SIGTERM)
    stderr = process.stderr.read()
    assert process.wait() == 143, stderr[-3000:]
    assert "SIGTERM: stopped at epoch 2 iteration" in stderr and "Traceback" not in stderr
    assert f"continue with: python {args[0]} --resume" in stderr
    assert torch.load(out / "checkpoint" / "last.pth", weights_only=True)["epoch"] == 1
    assert json.loads((out / "history.json").read_text())["epochs"][-1]["epoch"] == 1
    assert not [p for p in out.rglob("*") if p.name.endswith((TMP_SUFFIX, ".tmp"))]
    assert list(out.glob("events.out.tfevents.*"))  # TensorBoard's file, flushed and closed

    resumed = run_cli([args[0], "--resume", *args[1:]])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _assert_same_final_weights(straight_run, out / "checkpoint" / "last.pth")


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
