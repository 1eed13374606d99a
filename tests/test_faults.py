"""Faults a long run meets: a second run on one output folder, a full disk, a worker's error, the shell scripts."""

import errno
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import ROOT, run_cli, tiny_opts
from rvsl.checkpoint import read_weights
from rvsl.engine.defaults import launch
from rvsl.engine.trainer import train_stage
from rvsl.utils.errors import InputError, one_line
from rvsl.utils.io import TMP_SUFFIX
from rvsl.utils.lock import lock_output_dir, unlock_all

HOLD = ("import sys, time; from pathlib import Path; from rvsl.utils.lock import lock_output_dir; "
        "lock_output_dir(Path(sys.argv[1])); print('locked', flush=True); time.sleep(600)")


def _holder(folder: Path) -> subprocess.Popen:
    """Another process that holds the lock of ``folder`` (returned once it does)."""
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "locked"
    return process


def test_second_run_on_a_busy_output_dir_exits_2_naming_folder_and_holder(tiny_fvrid, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    holder = _holder(out)
    try:
        result = run_cli(["RVSL/stage1_trainer.py", "-c", "configs/demo.yml", "DATASETS.DATA_PATH", str(tiny_fvrid),
                          "OUTPUT_DIR", str(out), "MODEL.DEVICE", "cpu"])
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"OUTPUT_DIR {out.resolve()} is in use by another run (pid {holder.pid} on" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (out / "log.txt").exists() and not (out / "config.yaml").exists()  # it wrote nothing there


def test_a_killed_holder_does_not_block_the_next_run(tmp_path):
    holder = _holder(tmp_path)
    holder.send_signal(signal.SIGKILL)  # a crash: no clean-up ran
    holder.wait()
    lock_output_dir(tmp_path)  # the OS released the lock
    lock_output_dir(tmp_path)  # taking it again in the same process is fine
    try:
        other = subprocess.run([sys.executable, "-c", HOLD, str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                               timeout=120)
        assert other.returncode != 0 and f"pid {os.getpid()} on" in other.stderr  # now this process holds it
    finally:
        unlock_all()
    holder = _holder(tmp_path)  # released: another process takes it
    holder.kill()
    holder.wait()


def test_full_disk_during_a_checkpoint_keeps_the_previous_ones_and_exits_2(tiny_fvrid, tmp_path, monkeypatch, capsys):
    """The epoch-2 save fails with ENOSPC after writing part of its file: last.pth / best.pth of epoch 1 (one
    file, hard-linked) stay loadable, no temporary file is left, one error line names the folder, exit 2."""
    real_save, saves = torch.save, []

    def save_until_the_disk_is_full(obj, f, *args, **kwargs):
        saves.append(f)
        if len(saves) == 1:
            return real_save(obj, f, *args, **kwargs)
        f.write(b"part of a checkpoint")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", save_until_the_disk_is_full)
    out = tmp_path / "out"
    argv = ["-c", str(ROOT / "configs/demo.yml"), "DATASETS.DATA_PATH", str(tiny_fvrid), "OUTPUT_DIR", str(out),
            *tiny_opts(), "VAL.SYN_IDENTITIES", "0", "SOLVER.MAX_EPOCHS", "2",
            "SOLVER.BEST_METRIC", "last"]  # every epoch is best: best.pth is rewritten
    assert launch(train_stage, "test", stage="STAGE1", argv=argv) == 2
    monkeypatch.undo()
    assert len(saves) == 2
    errors = [line.split(" ERROR: ", 1)[1] for line in capsys.readouterr().err.splitlines() if " ERROR: " in line]
    assert errors == [f"error: cannot write best.pth in {out / 'checkpoint'} (No space left on device); "
                      "the previous best.pth there, if any, is unchanged"]
    for name in ("last", "best"):
        assert read_weights(str(out / "checkpoint" / f"{name}.pth"), name, formats=("rvsl",)).meta["epoch"] == 1
    assert os.path.samefile(out / "checkpoint" / "last.pth", out / "checkpoint" / "best.pth")
    holder = _holder(out)  # launch released the folder's lock when it returned
    holder.kill()
    holder.wait()
    assert not [p for p in out.rglob("*") if p.name.endswith(TMP_SUFFIX)]


def test_worker_traceback_is_cut_to_the_original_message():
    text = ("Caught InputError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
            '  File "x.py", line 1, in f\n    raise InputError("image does not decode: a.jpg")\n'
            "rvsl.utils.errors.InputError: image does not decode: a.jpg\n")
    assert one_line(InputError(text)) == "image does not decode: a.jpg"
    assert one_line(InputError("plain message")) == "plain message"


# ---------------------------------------------------------------------------- train.sh / test.sh
FAKE_PYTHON = """#!/usr/bin/env bash
# a stand-in interpreter: answers the module probe with $PROBE, records every other call
case "$1" in -c) exit "${PROBE:-0}" ;; esac
echo "$0 $*" >> "$CALLS"
"""


def _clone(tmp_path: Path) -> Path:
    """The two scripts and their shell functions, as in a fresh clone."""
    clone = tmp_path / "clone"
    (clone / "RVSL").mkdir(parents=True)
    for name in ("train.sh", "test.sh", "RVSL/scripts.sh"):
        shutil.copy(ROOT / name, clone / name)
    return clone


def _fake(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(FAKE_PYTHON)
    path.chmod(0o755)
    return path


def _bash(clone: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "PYTHON"}
    return subprocess.run(["bash", *args], cwd=clone, env={**environ, **env}, capture_output=True, text=True,
                          timeout=60)


def test_scripts_use_the_project_venv_when_python_is_unset(tmp_path):
    clone = _clone(tmp_path)
    venv_python = _fake(clone / ".venv" / "bin" / "python")
    calls = tmp_path / "calls.txt"
    result = _bash(clone, "train.sh", "SOLVER.MAX_EPOCHS", "1", CALLS=str(calls))
    assert result.returncode == 0, result.stderr
    lines = calls.read_text().splitlines()
    assert [line.split()[:2] for line in lines] == [[str(venv_python), f"RVSL/stage{n}_trainer.py"] for n in (1, 2, 3)]
    assert all(line.endswith("SOLVER.MAX_EPOCHS 1") and " --auto-resume " in line for line in lines)
    assert not any("MODE.STAGE" in line for line in lines)  # each stage script knows its stage
    calls.unlink()
    result = _bash(clone, "test.sh", "w.pth", "out", CALLS=str(calls))
    assert result.returncode == 0, result.stderr
    assert calls.read_text().count(f"{venv_python} RVSL/inference.py") == 3


def test_scripts_without_a_usable_python_say_how_to_make_one(tmp_path):
    clone = _clone(tmp_path)
    path_python = _fake(tmp_path / "bin" / "python")  # on PATH, without rvsl
    for script in ("train.sh", "test.sh"):
        result = _bash(clone, script, "w.pth", PROBE="1", CALLS=str(tmp_path / "calls.txt"),
                       PATH=f"{path_python.parent}:{os.environ['PATH']}")
        assert result.returncode == 2
        assert result.stderr.strip().splitlines() == [
            f"{script}: python cannot import rvsl and torch: run 'make venv' in {clone} (it creates .venv, used from "
            "then on), or set PYTHON to an interpreter that has them"]
    assert not (tmp_path / "calls.txt").exists()


@pytest.mark.parametrize("script", ["train.sh", "test.sh"])
def test_scripts_print_their_usage(tmp_path, script):
    result = _bash(_clone(tmp_path), script, "--help")
    assert result.returncode == 0 and result.stdout.splitlines()[1].startswith("usage:")
    assert "PYTHON (./.venv/bin/python when" in result.stdout and "set -euo" not in result.stdout
