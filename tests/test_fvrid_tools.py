"""The dataset tooling package (Datasets/fvrid_tools): the offline builder, depth maps, and its separation
from the training library. The checker's tests are in test_fvrid_check.py."""

import ast
import csv
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict

import cv2
import numpy as np
import pytest

from fvrid_tools.builder import GROUND_PLANE, VEHICLE1M, VERIWILD, build_fvrid, plan_build, read_index
from fvrid_tools.builder import run as build_run
from fvrid_tools.check import check_dataset, format_report
from fvrid_tools.depth import DepthEstimator, fit_depth, ground_plane_depth
from helpers import EXPECTED_FOLDERS, assert_cli_error, fvrid_name, noise_jpeg, run_script
from rvsl.data.check import select_layout
from rvsl.utils.errors import InputError

REPO = Path(__file__).resolve().parents[1]
BUILD = REPO / "Datasets" / "build_fvrid.py"

# (SAVE, identity, camera) of each index row: every query has a match from another camera and no
# training identity is tested, so the built dataset is clean.
SPEC = [("FVRID_syn/train_clear", 1, 1), ("FVRID_syn/train_clear", 1, 2), ("FVRID_syn/train_clear", 2, 3),
        ("FVRID_syn/query_clear", 10, 1), ("FVRID_syn/gallery_clear", 10, 2), ("FVRID_syn/gallery_clear", 11, 2),
        ("FVRID_clear/train_clear", 30, 1), ("FVRID_clear/query_clear", 40, 1), ("FVRID_clear/gallery_clear", 40, 2),
        ("FVRID_real/train_foggy", 20, 1), ("FVRID_real/query_foggy", 25, 1), ("FVRID_real/gallery_foggy", 25, 2)]


def make_sources(root: Path) -> Path:
    """Fake VeRi-Wild / Vehicle-1M trees and an index CSV for :data:`SPEC`; returns the index path."""
    rows = []
    for i, (save, pid, cam) in enumerate(SPEC):
        vw = i % 2 == 0
        ori = f"{pid:05d}/{i:06d}.jpg"
        noise_jpeg(root / ("veriwild" if vw else "vehicle1m") / ori, i, (24 + 2 * (i % 3), 32))
        rows.append([fvrid_name(pid, cam, i), f"{i:06d}.jpg", VERIWILD if vw else VEHICLE1M, save, ori])
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


# --------------------------------------------------------------------------------------------- build


def test_build_gives_fvrid_layout(clean):
    for rel in EXPECTED_FOLDERS.values():
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
    result = run_script(BUILD, "--index", src / "index.csv", "--veriwild", src / "veriwild", "--vehicle1m",
                 src / "vehicle1m", "--out", out, "--seed", "7", "--workers", "2", "--no-progress")
    assert result.returncode == 0, result.stderr
    assert tree_bytes(out) == tree_bytes(clean)
    again = run_script(BUILD, "--index", src / "index.csv", "--veriwild", src / "veriwild", "--vehicle1m",
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
    render = build_run.render_hazy

    def interrupting(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return render(*args, **kwargs)

    monkeypatch.setattr(build_run, "render_hazy", interrupting)
    with pytest.raises(KeyboardInterrupt):
        build_fvrid(src / "index.csv", sources_of(src), out, seed=7, workers=1, progress=False)
    monkeypatch.setattr(build_run, "render_hazy", render)
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
            stem = Path(fvrid_name(pid, cam, i)).stem
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
    (depth / f"{Path(fvrid_name(1, 1, 0)).stem}.png").unlink()
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
    assert isinstance(make_estimator(), DepthEstimator)
    out = tmp_path / "out"
    build_fvrid(src / "index.csv", sources_of(src), out, estimator=f"{__name__}:make_estimator", progress=False)
    with open(out / "manifest.csv", newline="") as handle:
        assert {r["depth"] for r in csv.DictReader(handle) if r["kind"] == "haze"} == \
            {f"estimator:{__name__}:make_estimator"}
    with pytest.raises(InputError, match="has no attribute"):
        build_fvrid(src / "index.csv", sources_of(src), tmp_path / "o2", estimator=f"{__name__}:nothing")


def test_ground_plane_fallback():
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


def test_build_cli_errors(src, tmp_path):
    args = ["--veriwild", src / "veriwild", "--vehicle1m", src / "vehicle1m", "--out", tmp_path / "o"]
    assert_cli_error(run_script(BUILD, "--index", tmp_path / "none.csv", *args), "index file not found", "none.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("IMG,FILE,SOURCE,SAVE\nx.jpg,a.jpg,VeRi-Wild,FVRID_syn/train_clear\n")
    assert_cli_error(run_script(BUILD, "--index", bad, *args), "no column NAME or ORI_NAME",
                     "IMG, NAME, SOURCE, SAVE, ORI_NAME")
    lines = (src / "index.csv").read_text().splitlines()
    img = lines[3].split(",")[0]
    broken = tmp_path / "broken.csv"
    broken.write_text("\n".join(lines[:3] + [f"{img},gone.jpg,VeRi-Wild,FVRID_syn/train_clear,00002/gone.jpg"]
                                + lines[4:]) + "\n")
    assert_cli_error(run_script(BUILD, "--index", broken, *args), "line 4", img, "source image not found",
                     "00002/gone.jpg")
    assert_cli_error(run_script(BUILD, "--index", src / "index.csv", "--veriwild", tmp_path / "nowhere",
                                "--out", tmp_path / "o"),
               "VeRi-Wild image folder not found", "nowhere")


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


def test_training_library_imports_no_tooling():
    """No module of RVSL/rvsl imports fvrid_tools (nor anything from Datasets/)."""
    library = REPO / "RVSL" / "rvsl"
    modules = sorted(library.rglob("*.py"))
    assert len(modules) > 30
    offenders = []
    for path in modules:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{path.relative_to(REPO)}: {n}" for n in names
                          if n.split(".")[0] in ("fvrid_tools", "Datasets")]
    assert not offenders
    # and importing the whole library loads no tooling module
    code = ("import importlib, pkgutil, sys, rvsl\n"
            "for m in pkgutil.walk_packages(rvsl.__path__, 'rvsl.'): importlib.import_module(m.name)\n"
            "print(sorted(n for n in sys.modules if n.startswith('fvrid_tools')))")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "RVSL"), str(REPO / "Datasets")]))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_no_module_changes_the_umask(tmp_path):
    """Importing the tooling leaves the process umask alone; written files follow it."""
    code = ("import os; os.umask(0o027)\n"
            "import fvrid_tools.builder, fvrid_tools.check, fvrid_tools.demo, fvrid_tools.imageio\n"
            "import numpy as np\n"
            "fvrid_tools.imageio.write_image(os.path.join(os.sys.argv[1], 'a.jpg'), np.zeros((8, 8, 3), np.uint8))\n"
            "print(oct(os.umask(0)))")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "RVSL"), str(REPO / "Datasets")]))
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, env=env,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0o27"
    assert (tmp_path / "a.jpg").stat().st_mode & 0o777 == 0o640

