"""FVRID tools: the offline builder (Datasets/build_fvrid.py) and the checker (Datasets/check_fvrid.py)."""

import csv
import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, Tuple

import cv2
import numpy as np
import pytest

from rvsl.data import fvrid_build
from rvsl.data.check import FVRID_FOLDERS, PROBLEM_KINDS, check_dataset, format_report, log_report, select_layout
from rvsl.data.fvrid_build import GROUND_PLANE, VEHICLE1M, VERIWILD, build_fvrid, plan_build, read_index
from rvsl.utils.errors import InputError

REPO = Path(__file__).resolve().parents[1]
BUILD = REPO / "Datasets" / "build_fvrid.py"
CHECK = REPO / "Datasets" / "check_fvrid.py"
MAKE_DEMO = REPO / "Datasets" / "make_demo.py"

# (SAVE, identity, camera) of each index row: every query has a match from another camera and no
# training identity is tested, so the built dataset is clean.
SPEC = [("FVRID_syn/train_clear", 1, 1), ("FVRID_syn/train_clear", 1, 2), ("FVRID_syn/train_clear", 2, 3),
        ("FVRID_syn/query_clear", 10, 1), ("FVRID_syn/gallery_clear", 10, 2), ("FVRID_syn/gallery_clear", 11, 2),
        ("FVRID_clear/train_clear", 30, 1), ("FVRID_clear/query_clear", 40, 1), ("FVRID_clear/gallery_clear", 40, 2),
        ("FVRID_real/train_foggy", 20, 1), ("FVRID_real/query_foggy", 25, 1), ("FVRID_real/gallery_foggy", 25, 2)]


def _noise(path: Path, seed: int, size: Tuple[int, int] = (24, 32)) -> None:
    """Write a small random JPEG (distinct content per seed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    assert cv2.imwrite(str(path), image)


def _name(pid: int, cam: int, frame: int) -> str:
    """FVRID file name."""
    return f"{pid:05d}_c{cam:03d}_{frame:06d}_0.jpg"


def make_sources(root: Path) -> Path:
    """Fake VeRi-Wild / Vehicle-1M trees and an index CSV for :data:`SPEC`; returns the index path."""
    rows = []
    for i, (save, pid, cam) in enumerate(SPEC):
        vw = i % 2 == 0
        ori = f"{pid:05d}/{i:06d}.jpg"
        _noise(root / ("veriwild" if vw else "vehicle1m") / ori, i, (24 + 2 * (i % 3), 32))
        rows.append([_name(pid, cam, i), f"{i:06d}.jpg", VERIWILD if vw else VEHICLE1M, save, ori])
    index = root / "index.csv"
    with open(index, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["IMG", "NAME", "SOURCE", "SAVE", "ORI_NAME"])
        writer.writerows(rows)
    return index


def sources_of(root: Path) -> Dict[str, str]:
    """Source folders of :func:`make_sources`."""
    return {VERIWILD: str(root / "veriwild"), VEHICLE1M: str(root / "vehicle1m")}


def tree_bytes(root: Path) -> Dict[str, bytes]:
    """Every file under ``root`` (hidden ones included) by relative path."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def run(script: Path, *args: str) -> subprocess.CompletedProcess:
    """Run a Datasets/ script with this interpreter."""
    return subprocess.run([sys.executable, str(script), *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, timeout=120)


@pytest.fixture(scope="module")
def src(tmp_path_factory) -> Path:
    """Fake source datasets and their index."""
    root = tmp_path_factory.mktemp("sources")
    make_sources(root)
    return root


@pytest.fixture(scope="module")
def clean(src, tmp_path_factory) -> Path:
    """A clean one-worker build of :data:`SPEC`."""
    out = tmp_path_factory.mktemp("clean")
    build_fvrid(src / "index.csv", sources_of(src), out, seed=7, workers=1, progress=False)
    return out


def make_dataset(root: Path) -> Path:
    """A small clean FVRID tree written directly (no builder), for the checker."""
    frame = 0
    for key, rel in FVRID_FOLDERS.items():
        domain, split, condition = key.split("_")
        base = {"SYN": 100, "REAL": 300 if condition == "CLEAR" else 200}[domain]
        pids = [base + 1, base + 2] if split == "TRAIN" else [base + 50, base + 51]
        cams = {"TRAIN": (1, 2), "QUERY": (1,), "GALLERY": (2, 3)}[split]
        for pid in pids:
            for cam in cams:
                frame += 1
                # Twins share names (same frame number per position) and sizes across clear/foggy.
                twin_frame = (pid * 10 + cam) if domain == "SYN" else frame
                seed = frame if condition == "FOGGY" or domain == "REAL" else 10_000 + frame
                _noise(root / rel / _name(pid, cam, twin_frame), seed, (20 + pid % 3, 28))
    return root


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """A clean FVRID tree for the checker."""
    return make_dataset(tmp_path_factory.mktemp("fvrid"))


# --------------------------------------------------------------------------------------------- build


def test_build_gives_fvrid_layout(clean):
    for rel in FVRID_FOLDERS.values():
        assert (clean / rel).is_dir(), rel
    for save, pid, cam in SPEC:
        names = [p.name for p in (clean / save).iterdir()]
        assert any(n.startswith(f"{pid:05d}_c{cam:03d}_") for n in names)
    for split in ("train", "query", "gallery"):
        clear = sorted(p.name for p in (clean / f"FVRID_syn/{split}_clear").iterdir())
        assert clear == sorted(p.name for p in (clean / f"FVRID_syn/{split}_foggy").iterdir())
        for name in clear:
            c = cv2.imread(str(clean / f"FVRID_syn/{split}_clear" / name))
            h = cv2.imread(str(clean / f"FVRID_syn/{split}_foggy" / name))
            assert c.shape == h.shape and not np.array_equal(c, h)
    report = check_dataset(clean)
    assert report.ok, format_report(report)


def test_manifest_lists_every_output(clean, src):
    with open(clean / "manifest.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    files = {p.relative_to(clean).as_posix() for p in clean.glob("FVRID_*/*/*")}
    assert {r["file"] for r in rows} == files
    assert [r["file"] for r in rows] == sorted(r["file"] for r in rows)
    haze = [r for r in rows if r["kind"] == "haze"]
    assert len(haze) == sum(1 for s, _, _ in SPEC if s.startswith("FVRID_syn"))
    for r in haze:
        assert 0.4 <= float(r["airlight"]) <= 1.0 and 1.0 <= float(r["beta"]) <= 5.0
        assert r["seed"] == "7" and r["depth"] == GROUND_PLANE and r["clear_twin"].startswith("FVRID_syn/")
    copies = [r for r in rows if r["kind"] == "copy"]
    for r in copies:
        dataset, rel = r["source"].split("/", 1)
        folder = sources_of(src)[dataset]
        assert (Path(folder) / rel).read_bytes() == (clean / r["file"]).read_bytes()


def test_same_seed_same_bytes_with_two_workers_cli(clean, src, tmp_path):
    out = tmp_path / "two"
    result = run(BUILD, "--index", src / "index.csv", "--veriwild", src / "veriwild", "--vehicle1m",
                 src / "vehicle1m", "--out", out, "--seed", "7", "--workers", "2", "--no-progress")
    assert result.returncode == 0, result.stderr
    assert tree_bytes(out) == tree_bytes(clean)
    again = run(BUILD, "--index", src / "index.csv", "--veriwild", src / "veriwild", "--vehicle1m",
                src / "vehicle1m", "--out", out, "--seed", "7", "--no-progress")
    assert again.returncode == 0 and "0 files written" in again.stdout
    assert tree_bytes(out) == tree_bytes(clean)


def test_other_seed_other_haze(src, clean, tmp_path):
    build_fvrid(src / "index.csv", sources_of(src), tmp_path, seed=8, progress=False)
    name = next((clean / "FVRID_syn/train_foggy").iterdir()).name
    assert (tmp_path / "FVRID_syn/train_foggy" / name).read_bytes() != \
        (clean / "FVRID_syn/train_foggy" / name).read_bytes()
    assert (tmp_path / "FVRID_syn/train_clear" / name).read_bytes() == \
        (clean / "FVRID_syn/train_clear" / name).read_bytes()


def test_haze_does_not_depend_on_order(src, clean, tmp_path):
    index = src / "index.csv"
    lines = index.read_text().splitlines()
    reversed_index = tmp_path / "reversed.csv"
    reversed_index.write_text("\n".join([lines[0]] + lines[:0:-1]) + "\n")
    out = tmp_path / "out"
    build_fvrid(reversed_index, sources_of(src), out, seed=7, progress=False)
    images = {k: v for k, v in tree_bytes(out).items() if k.startswith("FVRID_")}
    assert images == {k: v for k, v in tree_bytes(clean).items() if k.startswith("FVRID_")}


def test_interrupted_build_resumes_to_clean_result(src, clean, tmp_path, monkeypatch):
    out = tmp_path / "resumed"
    calls = {"n": 0}
    render = fvrid_build._render_hazy

    def interrupting(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return render(*args, **kwargs)

    monkeypatch.setattr(fvrid_build, "_render_hazy", interrupting)
    with pytest.raises(KeyboardInterrupt):
        build_fvrid(src / "index.csv", sources_of(src), out, seed=7, workers=1, progress=False)
    monkeypatch.setattr(fvrid_build, "_render_hazy", render)
    assert not (out / "manifest.csv").exists()
    partial = sorted(p for p in out.rglob("*.jpg"))
    assert 0 < len(partial) < len(tree_bytes(clean))
    # A write cut short by a crash leaves a hidden temporary file: the resume removes it.
    (out / "FVRID_syn/train_foggy/.00001_c001_000000_0.jpg.abc123.part").write_bytes(b"half an image")
    result = build_fvrid(src / "index.csv", sources_of(src), out, seed=7, workers=2, progress=False)
    assert result.skipped == len(partial)
    assert tree_bytes(out) == tree_bytes(clean)


def test_resume_with_other_seed_is_refused(src, clean):
    with pytest.raises(InputError, match="seed 7 -> 8"):
        build_fvrid(src / "index.csv", sources_of(src), clean, seed=8, progress=False)


def test_depth_files_any_scale(src, tmp_path):
    depth = tmp_path / "depth"
    depth.mkdir()
    for i, (save, pid, cam) in enumerate(SPEC):
        if save.startswith("FVRID_syn"):
            ramp = np.tile(np.linspace(0, 1, 16)[None, :], (12, 1))  # left near, right far; other size
            stem = Path(_name(pid, cam, i)).stem
            if i % 2:
                np.save(depth / f"{stem}.npy", 37.5 * ramp + 3.0)
            else:
                cv2.imwrite(str(depth / f"{stem}.png"), (ramp * 60000).astype(np.uint16))
    out = tmp_path / "out"
    build_fvrid(src / "index.csv", sources_of(src), out, depth_dir=str(depth), seed=7, progress=False)
    with open(out / "manifest.csv", newline="") as handle:
        depths = [r["depth"] for r in csv.DictReader(handle) if r["kind"] == "haze"]
    assert depths and all(d.startswith("file:") for d in depths)
    hazy = cv2.imread(str(next((out / "FVRID_syn/train_foggy").iterdir()))).astype(float)
    clear = cv2.imread(str(next((out / "FVRID_syn/train_clear").iterdir()))).astype(float)
    # Haze grows with depth: the far (right) side is flatter (closer to the airlight) than the near side.
    assert np.abs(hazy - clear)[:, -4:].mean() > np.abs(hazy - clear)[:, :4].mean()
    (depth / f"{Path(_name(1, 1, 0)).stem}.png").unlink()
    with pytest.raises(InputError, match=r"line 2 \(IMG 00001_c001_000000_0.jpg\): no depth file"):
        build_fvrid(src / "index.csv", sources_of(src), tmp_path / "out2", depth_dir=str(depth), progress=False)


class _LeftRightEstimator:
    """Test estimator: depth grows from left to right."""

    name = "left-right"

    def estimate(self, image: np.ndarray) -> np.ndarray:
        """Depth ramp across the width."""
        return np.tile(np.arange(image.shape[1], dtype=float), (image.shape[0], 1))


def make_estimator() -> _LeftRightEstimator:
    """Factory used through ``--depth-estimator test_fvrid_tools:make_estimator``."""
    return _LeftRightEstimator()


def test_pluggable_estimator(src, tmp_path):
    from rvsl.haze.depth import DepthEstimator

    assert isinstance(make_estimator(), DepthEstimator)
    out = tmp_path / "out"
    build_fvrid(src / "index.csv", sources_of(src), out, estimator=f"{__name__}:make_estimator", progress=False)
    with open(out / "manifest.csv", newline="") as handle:
        assert {r["depth"] for r in csv.DictReader(handle) if r["kind"] == "haze"} == \
            {f"estimator:{__name__}:make_estimator"}
    with pytest.raises(InputError, match="has no attribute"):
        build_fvrid(src / "index.csv", sources_of(src), tmp_path / "o2", estimator=f"{__name__}:nothing")


def test_ground_plane_fallback():
    from rvsl.haze.depth import fit_depth, ground_plane_depth

    depth = ground_plane_depth(5, 3)
    assert depth.shape == (5, 3) and depth[0, 0] == 1.0 and depth[-1, 0] == 0.0
    fitted = fit_depth(np.array([[10.0, 20.0], [30.0, 40.0]]), (4, 6), disparity=True)
    assert fitted.shape == (4, 6) and fitted.min() >= 0.0 and fitted.max() <= 1.0


def test_index_variants(src, tmp_path):
    base = read_index(src / "index.csv")
    ref = plan_build(base, sources_of(src))
    # pandas to_csv index column, aliases in other cases, the reference repo's 'Veriwild' and '../../' prefix.
    variant = tmp_path / "variant.csv"
    with open(variant, "w", newline="") as handle:
        writer = csv.writer(handle, delimiter=";")
        writer.writerow(["", "img_name", "Name", "source_dataset", "Save_Dir", "ori_name"])
        for i, row in enumerate(base):
            source = "Veriwild" if row.source == VERIWILD else "vehicle1m"
            writer.writerow([i, row.img, row.name, source, f"../../{row.save}/", row.ori_name])
    assert [(t.img, t.save, t.source) for t in plan_build(read_index(variant), sources_of(src))] == \
        [(t.img, t.save, t.source) for t in ref]
    headerless = tmp_path / "headerless.csv"
    headerless.write_text("\n".join(",".join([r.img, r.name, r.source, r.save, r.ori_name]) for r in base) + "\n")
    assert [(t.img, t.save) for t in plan_build(read_index(headerless), sources_of(src))] == \
        [(t.img, t.save) for t in ref]
    # NAME is the fallback when ORI_NAME does not exist under the source folder.
    only_name = plan_build([base[0]._replace(ori_name="missing.jpg", name=base[0].ori_name)], sources_of(src))
    assert only_name[0].source == f"{VERIWILD}/{base[0].ori_name}"


def test_bad_rows_are_named(src, tmp_path):
    base = read_index(src / "index.csv")
    rows = [base[0]._replace(source="CityFlow"), base[1]._replace(save="FVRID_syn/train_foggy"),
            base[2]._replace(img="car.jpg"), base[3], base[3]._replace(line=99)]
    with pytest.raises(InputError) as info:
        plan_build(rows, sources_of(src), "idx.csv")
    message = str(info.value)
    for needle in ("line 2", "CityFlow", "line 3", "rendered by this tool", "line 4", "car.jpg",
                   "line 99", "also written by line 5"):
        assert needle in message
    with pytest.raises(InputError, match="--vehicle1m"):
        plan_build(base, {VERIWILD: str(src / "veriwild"), VEHICLE1M: None})


def _cli_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    """Exit 2 with a one-line message holding ``needles`` and no traceback."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    line = [l for l in result.stderr.splitlines() if "error:" in l]
    assert len(line) == 1
    for needle in needles:
        assert needle in line[0], line[0]


def test_build_cli_errors(src, tmp_path):
    args = ["--veriwild", src / "veriwild", "--vehicle1m", src / "vehicle1m", "--out", tmp_path / "o"]
    _cli_error(run(BUILD, "--index", tmp_path / "none.csv", *args), "index file not found", "none.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("IMG,FILE,SOURCE,SAVE\nx.jpg,a.jpg,VeRi-Wild,FVRID_syn/train_clear\n")
    _cli_error(run(BUILD, "--index", bad, *args), "no column NAME or ORI_NAME", "IMG, NAME, SOURCE, SAVE, ORI_NAME")
    lines = (src / "index.csv").read_text().splitlines()
    img = lines[3].split(",")[0]
    broken = tmp_path / "broken.csv"
    broken.write_text("\n".join(lines[:3] + [f"{img},gone.jpg,VeRi-Wild,FVRID_syn/train_clear,00002/gone.jpg"]
                                + lines[4:]) + "\n")
    _cli_error(run(BUILD, "--index", broken, *args), "line 4", img, "source image not found", "00002/gone.jpg")
    _cli_error(run(BUILD, "--index", src / "index.csv", "--veriwild", tmp_path / "nowhere", "--out", tmp_path / "o"),
               "VeRi-Wild image folder not found", "nowhere")


# --------------------------------------------------------------------------------------------- check


def test_check_clean_dataset_cli(dataset):
    result = run(CHECK, dataset)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK: no problem found" in result.stdout
    for rel in FVRID_FOLDERS.values():
        assert rel in result.stdout
    as_json = json.loads(run(CHECK, dataset, "--json").stdout)
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
        path = root / "FVRID_clear/train_clear/IMG_0001.jpg"
        _noise(path, 999)
        return "FVRID_clear/train_clear/IMG_0001.jpg"
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
        _noise(path, 4242, (17, 23))
        return path.relative_to(root).as_posix()
    if kind == "train_test_overlap":
        train = _first(root, "FVRID_syn/train_clear").name
        pid = train.split("_")[0]
        name = f"{pid}_c009_777777_0.jpg"
        _noise(root / "FVRID_syn/gallery_clear" / name, 777)
        _noise(root / "FVRID_syn/gallery_foggy" / name, 778)
        return f"FVRID_syn/gallery_clear/{name}"
    if kind == "query_without_match":
        path = root / "FVRID_clear/query_clear" / _name(99990, 1, 888888)
        _noise(path, 888)
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
        assert check_dataset(root, fast=True).ok  # the trainers' fast mode skips what needs a decode
    else:
        assert not check_dataset(root, fast=True).ok


@pytest.mark.parametrize("kind", ["unparseable_name", "undecodable", "missing_twin", "duplicate"])
def test_check_cli_exit_1_names_the_file(dataset, tmp_path, kind):
    root = tmp_path / "copy"
    shutil.copytree(dataset, root)
    culprit = plant(root, kind)
    result = run(CHECK, root)
    assert result.returncode == 1, result.stdout
    assert f"{kind}: 1 (" in result.stdout and culprit in result.stdout
    as_json = json.loads(run(CHECK, root, "--json").stdout)
    assert not as_json["ok"] and as_json["problems"][kind]["items"][0]["path"] == culprit


def test_check_lists_first_few_and_counts(dataset, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(dataset, root)
    for i in range(8):
        _noise(root / f"FVRID_clear/train_clear/bad_{i}.jpg", 500 + i)
    text = format_report(check_dataset(root, fast=True), max_listed=3)
    assert "unparseable_name: 8 (" in text and "... and 5 more" in text and "bad_0.jpg" in text


def test_check_domains_and_trainer_logging(dataset, tmp_path, caplog):
    root = tmp_path / "copy"
    shutil.copytree(dataset, root)
    shutil.rmtree(root / "FVRID_real")
    assert not check_dataset(root, fast=True).ok
    report = check_dataset(root, select_layout(["syn", "clear"]), fast=True)
    assert report.ok and len(report.folders) == 9
    _noise(root / "FVRID_syn/train_clear/oops.jpg", 1)
    with caplog.at_level("WARNING"):
        assert not log_report(check_dataset(root, select_layout(["syn"]), fast=True), logging.getLogger("fvrid_test"))
    assert "oops.jpg" in caplog.text


def test_check_cli_bad_root(tmp_path):
    _cli_error(run(CHECK, tmp_path / "nowhere"), "dataset folder not found", "nowhere")


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
    result = run(CHECK, demo)
    assert result.returncode == 0, result.stdout
    assert "OK: no problem found" in result.stdout


@pytest.mark.parametrize("kind", list(PROBLEM_KINDS))
def test_check_cli_demo_copy_with_one_problem(demo, tmp_path, kind):
    root = tmp_path / "copy"
    shutil.copytree(demo, root)
    culprit = plant(root, kind)
    result = run(CHECK, root)
    assert result.returncode == 1, result.stdout
    assert f"{kind}: " in result.stdout and culprit in result.stdout, result.stdout
    problems = [line.split(":")[0] for line in result.stdout.splitlines() if line.split(":")[0] in PROBLEM_KINDS]
    assert problems == [kind], result.stdout


def test_startup_check_from_config(dataset, tmp_path):
    from rvsl.config import get_cfg_defaults
    from rvsl.data.check import startup_check

    cfg = get_cfg_defaults()
    cfg.DATASETS.DATA_PATH = str(dataset)
    cfg.MODE.STAGE = "STAGE2"
    report = startup_check(cfg)
    assert report.ok and report.fast and len(report.folders) == 9
    cfg.DATASETS.DATA_PATH = str(tmp_path / "nowhere")
    with pytest.raises(InputError, match="nowhere"):
        startup_check(cfg)


def test_exif_rotated_source_keeps_twins_aligned(tmp_path):
    from PIL import Image

    source = tmp_path / "vw" / "a.jpg"
    source.parent.mkdir()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display; the loaders (cv2) apply it
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(source, exif=exif)
    index = tmp_path / "index.csv"
    index.write_text("IMG,SOURCE,SAVE,ORI_NAME\n00001_c001_000001_0.jpg,VeRi-Wild,FVRID_syn/train_clear,a.jpg\n")
    out = tmp_path / "out"
    build_fvrid(index, {VERIWILD: str(source.parent)}, out, progress=False)
    clear = cv2.imread(str(out / "FVRID_syn/train_clear/00001_c001_000001_0.jpg"))
    hazy = cv2.imread(str(out / "FVRID_syn/train_foggy/00001_c001_000001_0.jpg"))
    assert clear.shape == hazy.shape == (30, 20, 3)
    report = check_dataset(out, select_layout(["syn"]))
    assert not report.problems["twin_size_mismatch"], format_report(report)
