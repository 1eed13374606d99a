"""The dataset checker: the library's fast check (rvsl.data.check, run at start-up) on the loaders' scanner,
and the full check of Datasets/check_fvrid.py (fvrid_tools.check)."""

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fvrid_tools.check import check_dataset, format_report
from helpers import (EXPECTED_DEV_FOLDERS, EXPECTED_FOLDERS, TINY_CONFIG, assert_cli_error, fvrid_name, noise_jpeg,
                     run_script)
from rvsl.config import get_cfg_defaults, load_config
from rvsl.data import fvrid
from rvsl.data.build import build_train_loaders
from rvsl.data.check import PROBLEM_KINDS, log_report, scan_dataset, select_layout, startup_check
from rvsl.utils.errors import InputError

REPO = Path(__file__).resolve().parents[1]
CHECK = REPO / "Datasets" / "check_fvrid.py"
MAKE_DEMO = REPO / "Datasets" / "make_demo.py"


def make_dataset(root: Path) -> Path:
    """A small clean FVRID tree written directly (no builder): identities apart per domain, twins alike."""
    frame = 0
    for key, rel in EXPECTED_FOLDERS.items():
        domain, split, condition = key.split("_")[:3]
        base = {"SYN": 100, "REAL": 300 if condition == "CLEAR" else 200}[domain]
        pids = [base + 1, base + 2] if split == "TRAIN" else [base + 50, base + 51]
        cams = {"TRAIN": (1, 2), "QUERY": (1,), "GALLERY": (2, 3)}[split]
        for pid in pids:
            for cam in cams:
                frame += 1
                # Twins share names (same frame number per position) and sizes across clear/foggy.
                twin_frame = (pid * 10 + cam) if domain == "SYN" else frame
                seed = frame if condition == "FOGGY" or domain == "REAL" else 10_000 + frame
                noise_jpeg(root / rel / fvrid_name(pid, cam, twin_frame), seed, (20 + pid % 3, 28))
    return root


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """A clean FVRID tree for the checker."""
    return make_dataset(tmp_path_factory.mktemp("fvrid"))


def test_check_clean_dataset_cli(dataset):
    result = run_script(CHECK, dataset)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK: no problem found" in result.stdout
    for rel in EXPECTED_FOLDERS.values():
        assert rel in result.stdout
    as_json = json.loads(run_script(CHECK, dataset, "--json").stdout)
    assert as_json["ok"] and set(as_json["problems"]) == set(PROBLEM_KINDS)


def _first(root: Path, rel: str) -> Path:
    """First image of a folder."""
    return sorted((root / rel).iterdir())[0]


def plant(root: Path, kind: str) -> str:
    """Plant one problem of ``kind`` in the FVRID tree ``root``; returns the path the report must name."""
    if kind == "missing_folder":
        shutil.rmtree(root / "FVRID_real/gallery_foggy")
        return "FVRID_real/gallery_foggy"
    if kind == "empty_folder":
        for path in (root / "FVRID_clear/train_clear").iterdir():
            path.unlink()
        return "FVRID_clear/train_clear"
    if kind == "not_an_image":
        (root / "FVRID_syn/train_clear/labels.txt").write_text("x")
        return "FVRID_syn/train_clear/labels.txt"
    if kind == "unparseable_name":
        path = root / "FVRID_clear/query_clear/IMG_0001.jpg"
        noise_jpeg(path, 999)
        return "FVRID_clear/query_clear/IMG_0001.jpg"
    if kind == "undecodable":
        path = _first(root, "FVRID_real/train_foggy")
        path.write_bytes(path.read_bytes()[:100])
        return path.relative_to(root).as_posix()
    if kind == "missing_twin":
        path = _first(root, "FVRID_syn/train_foggy")
        path.unlink()
        return f"FVRID_syn/train_clear/{path.name}"
    if kind == "twin_size_mismatch":
        path = _first(root, "FVRID_syn/query_foggy")
        noise_jpeg(path, 4242, (17, 23))
        return path.relative_to(root).as_posix()
    if kind == "train_test_overlap":
        train = _first(root, "FVRID_syn/train_clear").name
        pid = train.split("_")[0]
        name = f"{pid}_c009_777777_0.jpg"
        noise_jpeg(root / "FVRID_syn/gallery_clear" / name, 777)
        noise_jpeg(root / "FVRID_syn/gallery_foggy" / name, 778)
        return f"FVRID_syn/gallery_clear/{name}"
    if kind == "query_without_match":
        path = root / "FVRID_clear/query_clear" / fvrid_name(99990, 1, 888888)
        noise_jpeg(path, 888)
        return path.relative_to(root).as_posix()
    if kind == "duplicate":
        source = _first(root, "FVRID_real/train_foggy")
        pid, cam = source.name.split("_")[:2]
        copy = root / "FVRID_real/train_foggy" / f"{pid}_{cam}_999999_0.jpg"
        copy.write_bytes(source.read_bytes())
        return copy.relative_to(root).as_posix()
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", list(PROBLEM_KINDS))
def test_check_names_each_planted_problem(dataset, tmp_path, kind):
    root = tmp_path / "copy"
    shutil.copytree(dataset, root)
    culprit = plant(root, kind)
    report = check_dataset(root)
    assert [k for k, n in report.counts().items() if n] == [kind], format_report(report)
    assert culprit in {p.path for p in report.problems[kind]}
    if kind in ("undecodable", "duplicate", "twin_size_mismatch"):
        assert scan_dataset(root).ok  # the trainers' fast mode skips what needs a decode
    else:
        assert not scan_dataset(root).ok


def _check_planted_copy(source: Path, tmp_path: Path, kind: str):
    """Copy ``source``, plant one problem of ``kind``, run the checker CLI (exit 1): ``(root, culprit, result)``."""
    root = tmp_path / "copy"
    shutil.copytree(source, root)
    culprit = plant(root, kind)
    result = run_script(CHECK, root)
    assert result.returncode == 1, result.stdout
    return root, culprit, result


@pytest.mark.parametrize("kind", ["unparseable_name", "undecodable", "missing_twin", "duplicate"])
def test_check_cli_exit_1_names_the_file(dataset, tmp_path, kind):
    root, culprit, result = _check_planted_copy(dataset, tmp_path, kind)
    assert f"{kind}: 1 (" in result.stdout and culprit in result.stdout
    as_json = json.loads(run_script(CHECK, root, "--json").stdout)
    assert not as_json["ok"] and as_json["problems"][kind]["items"][0]["path"] == culprit


def test_check_lists_first_few_and_counts(dataset, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(dataset, root)
    for i in range(8):
        noise_jpeg(root / f"FVRID_clear/query_clear/bad_{i}.jpg", 500 + i)
    text = format_report(check_dataset(root, fast=True), max_listed=3)
    assert "unparseable_name: 8 (" in text and "... and 5 more" in text and "bad_0.jpg" in text


def test_check_domains_and_trainer_logging(dataset, tmp_path, caplog):
    root = tmp_path / "copy"
    shutil.copytree(dataset, root)
    shutil.rmtree(root / "FVRID_real")
    assert not check_dataset(root, fast=True).ok
    report = check_dataset(root, select_layout(["syn", "real-clear"]), fast=True)
    assert report.ok and len(report.folders) == 9
    noise_jpeg(root / "FVRID_syn/train_clear/oops.jpg", 1)
    with caplog.at_level("WARNING"):
        assert not log_report(scan_dataset(root, select_layout(["syn"])), logging.getLogger("fvrid_test"))
    assert "oops.jpg" in caplog.text


def test_check_cli_bad_root(tmp_path):
    assert_cli_error(run_script(CHECK, tmp_path / "nowhere"), "dataset folder not found", "nowhere")


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    """A tiny dataset from Datasets/make_demo.py."""
    if not MAKE_DEMO.is_file():
        pytest.skip("Datasets/make_demo.py not written yet")
    out = tmp_path_factory.mktemp("demo") / "demo"
    made = subprocess.run([sys.executable, str(MAKE_DEMO), "--out", str(out), "--seed", "0", "--size", "32",
                           "--scale", "0.1"], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert made.returncode == 0, made.stderr
    return out


def test_check_demo_data(demo):
    result = run_script(CHECK, demo)
    assert result.returncode == 0, result.stdout
    assert "OK: no problem found" in result.stdout


@pytest.mark.parametrize("kind", list(PROBLEM_KINDS))
def test_check_cli_demo_copy_with_one_problem(demo, tmp_path, kind):
    _, culprit, result = _check_planted_copy(demo, tmp_path, kind)
    assert f"{kind}: " in result.stdout and culprit in result.stdout, result.stdout
    problems = [line.split(":")[0] for line in result.stdout.splitlines() if line.split(":")[0] in PROBLEM_KINDS]
    assert problems == [kind], result.stdout


def test_startup_check_from_config(dataset, tmp_path):
    cfg = get_cfg_defaults()
    cfg.DATASETS.DATA_PATH = str(dataset)
    cfg.MODE.STAGE = "STAGE2"
    report = startup_check(cfg)
    assert report.ok and report.fast and len(report.folders) == 9
    cfg.DATASETS.DATA_PATH = str(tmp_path / "nowhere")
    with pytest.raises(InputError, match="nowhere"):
        startup_check(cfg)




def _stage_cfg(root: Path, stage: str):
    """A config reading the tiny tree ``root`` in ``stage``, with loaders small enough for it."""
    return load_config(str(TINY_CONFIG), ["DATASETS.DATA_PATH", str(root), "MODE.STAGE", stage])


def _warnings(caplog) -> list:
    """Messages of the warnings captured so far."""
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def _parsed_names_on_a_copy(tiny_fvrid: Path, tmp_path: Path, monkeypatch) -> tuple:
    """``(parsed, root)``: the list every later parse_name call appends its name to, and a copy of the tiny tree."""
    parsed = []
    original = fvrid.parse_name
    monkeypatch.setattr(fvrid, "parse_name", lambda name: parsed.append(str(name)) or original(name))
    root = tmp_path / "data"
    shutil.copytree(tiny_fvrid, root)
    return parsed, root


def test_unlabelled_real_train_names_are_never_parsed(tiny_fvrid, tmp_path, caplog, monkeypatch):
    parsed, root = _parsed_names_on_a_copy(tiny_fvrid, tmp_path, monkeypatch)
    real = root / "FVRID_real" / "train_foggy"
    files = sorted(real.iterdir())
    for i, path in enumerate(files):
        path.rename(real / f"frame_{i + 1:04d}.jpg")  # a user's video frames: no identity at all
    cfg = _stage_cfg(root, "STAGE3")
    with caplog.at_level(logging.INFO):
        report = startup_check(cfg)
        build_train_loaders(cfg)
    assert report.ok and not _warnings(caplog), _warnings(caplog)
    assert parsed and not [name for name in parsed if "frame_" in name]
    stats = {s.key: s for s in report.folders}["REAL_TRAIN_FOGGY_PATH"]
    assert (stats.images, stats.labelled, stats.identities) == (len(files), False, 0)
    full = check_dataset(root)
    assert full.ok, format_report(full)
    assert "FVRID_real/train_foggy" in format_report(full)


def test_missing_twin_is_warned_once_per_startup(tiny_fvrid, tmp_path, caplog):
    for copy, with_check in (("checked", True), ("loader_only", False)):
        root = tmp_path / copy
        shutil.copytree(tiny_fvrid, root)
        victim = sorted((root / "FVRID_syn" / "train_foggy").iterdir())[0]
        victim.unlink()
        cfg = _stage_cfg(root, "STAGE1")
        caplog.clear()
        with caplog.at_level(logging.INFO):
            if with_check:
                assert not startup_check(cfg).ok
            build_train_loaders(cfg)
        mentions = [m for m in _warnings(caplog) if victim.name in m]
        assert len(mentions) == 1, mentions  # the check's warning, or the loader's when no check ran


def test_stage_without_real_test_set(tiny_fvrid, tmp_path, caplog):
    root = tmp_path / "data"
    shutil.copytree(tiny_fvrid, root)
    shutil.rmtree(root / "FVRID_clear" / "query_clear")
    shutil.rmtree(root / "FVRID_clear" / "gallery_clear")
    with caplog.at_level(logging.INFO):
        report = startup_check(_stage_cfg(root, "STAGE2"))
    assert report.ok and report.absent == ["REAL_QUERY_CLEAR_PATH", "REAL_GALLERY_CLEAR_PATH"]
    said = [r for r in caplog.records if "absent" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.INFO and not _warnings(caplog)
    assert len(report.folders) == 7
    # half a test set is a problem: the query folder without its gallery
    noise_jpeg(root / "FVRID_clear" / "query_clear" / fvrid_name(1100, 3, 1), 5)
    report = startup_check(_stage_cfg(root, "STAGE2"))
    assert [k for k, n in report.counts().items() if n] == ["missing_folder"]
    assert report.problems["missing_folder"][0].path == "FVRID_clear/gallery_clear"
    # stage 1 never requires the real folders; a missing synthetic test folder stays a problem
    shutil.rmtree(root / "FVRID_syn" / "gallery_foggy")
    report = startup_check(_stage_cfg(root, "STAGE1"))
    assert [p.path for p in report.problems["missing_folder"]] == ["FVRID_syn/gallery_foggy"]


def test_training_never_opens_the_dev_split(tiny_fvrid, tmp_path, caplog, monkeypatch):
    """The dev folders, even broken, do not matter to a training stage; the offline checker does check them."""
    parsed, root = _parsed_names_on_a_copy(tiny_fvrid, tmp_path, monkeypatch)
    dev_query, dev_gallery = (root / rel for rel in EXPECTED_DEV_FOLDERS.values())
    noise_jpeg(dev_query / "not_a_vehicle_name.jpg", 1)
    noise_jpeg(dev_query / fvrid_name(2100, 3, 7), 2)      # identity 2100 is also a real hazy test identity
    noise_jpeg(dev_gallery / fvrid_name(2100, 1, 8), 3)
    for stage in ("STAGE1", "STAGE2", "STAGE3"):
        caplog.clear()
        with caplog.at_level(logging.INFO):
            report = startup_check(_stage_cfg(root, stage))
            build_train_loaders(_stage_cfg(root, stage))
        assert report.ok and not _warnings(caplog), (stage, _warnings(caplog))
        assert not {s.key for s in report.folders} & set(EXPECTED_DEV_FOLDERS), stage
    assert not [name for name in parsed if "dev_" in name or "not_a_vehicle" in name]
    full = scan_dataset(root)
    assert full.problems["unparseable_name"][0].path == "FVRID_real/dev_query_foggy/not_a_vehicle_name.jpg"
    overlap = [p.path for p in full.problems["train_test_overlap"]]
    assert overlap == [f"FVRID_real/dev_query_foggy/{fvrid_name(2100, 3, 7)}",
                       f"FVRID_real/dev_gallery_foggy/{fvrid_name(2100, 1, 8)}"], overlap
    for folder in (dev_query, dev_gallery):  # absent, the dev split is no problem
        shutil.rmtree(folder)
    report = scan_dataset(root)
    assert report.ok and report.absent == list(EXPECTED_DEV_FOLDERS)
