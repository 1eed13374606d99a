"""Tests of the demo generator (fvrid_tools.demo, Datasets/make_demo.py): layout, identities, protocol,
determinism and the haze model."""

import hashlib
from pathlib import Path
from typing import Dict, List

import cv2
import numpy as np
import pytest

from fvrid_tools import demo
from helpers import EXPECTED_DEV_FOLDERS, EXPECTED_FOLDERS, run_cli
from rvsl.data.fvrid import parse_name
from rvsl.haze import synthesize

SCALE = 0.08       # 3..5 identities per split: a few hundred small images per run
SIZE = 64
# Where each demo source's images go, per split (its labelled condition for the synthetic one).
SOURCE_FOLDERS = {"syn": "FVRID_syn/{split}_clear", "real-clear": "FVRID_clear/{split}_clear",
                  "real-hazy": "FVRID_real/{split}_foggy"}
SPLITS = ("train", "query", "gallery")


def _make_demo(*args: str):
    """Run Datasets/make_demo.py with ``args``."""
    return run_cli(["Datasets/make_demo.py", *args], timeout=300)


def _hashes(root: Path) -> Dict[str, str]:
    """SHA-256 of every file under ``root``, by relative path."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _names(folder: Path) -> List[str]:
    """Sorted image names of a folder."""
    return sorted(p.name for p in folder.iterdir() if p.suffix == ".jpg")


def _read(path: Path) -> np.ndarray:
    """RGB float image in [0, 1]."""
    return cv2.imread(str(path))[..., ::-1].astype(np.float64) / 255.0


def _local_contrast(img: np.ndarray) -> float:
    """Mean absolute difference to a blurred copy (haze scales it by the transmission t < 1)."""
    return float(np.abs(img - cv2.GaussianBlur(img, (0, 0), 2.0)).mean())


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Dict[str, Path]:
    """Seed 0 twice (one process, then the command line with two worker processes) and seed 1 once."""
    base = tmp_path_factory.mktemp("demo")
    demo.generate(base / "a", seed=0, size=SIZE, scale=SCALE, workers=1)
    made = _make_demo("--out", str(base / "b"), "--seed", "0", "--size", str(SIZE), "--scale", str(SCALE),
                      "--workers", "2")
    assert made.returncode == 0, made.stderr
    demo.generate(base / "c", seed=1, size=SIZE, scale=SCALE, workers=1)
    return {"a": base / "a", "b": base / "b", "c": base / "c"}


def test_layout_and_names(runs):
    out = runs["a"]
    for rel in EXPECTED_FOLDERS.values():
        folder = out / rel
        names = _names(folder)
        assert names, folder
        for name in names:
            parsed = parse_name(name)
            assert parsed is not None and parsed[0] >= 0, name
            assert demo.DEMO_NAME.match(name), name
            img = cv2.imread(str(folder / name))
            assert img is not None and img.shape == (SIZE, SIZE, 3)
    assert sorted(p.relative_to(out).as_posix() for p in out.glob("*/*") if p.is_dir()) == \
        sorted([*EXPECTED_FOLDERS.values(), *EXPECTED_DEV_FOLDERS.values()])
    for split in SPLITS:
        assert _names(out / "FVRID_syn" / f"{split}_clear") == _names(out / "FVRID_syn" / f"{split}_foggy")


def test_identities_and_protocol(runs):
    out = runs["a"]
    per_source = {}
    assert [src.domain for src in demo.SOURCES] == list(SOURCE_FOLDERS)
    for domain, pattern in SOURCE_FOLDERS.items():
        recs = {split: [parse_name(n) for n in _names(out / pattern.format(split=split))] for split in SPLITS}
        train_ids = {pid for pid, _ in recs["train"]}
        query_ids = {pid for pid, _ in recs["query"]}
        gallery_ids = {pid for pid, _ in recs["gallery"]}
        assert train_ids.isdisjoint(query_ids | gallery_ids)
        assert query_ids == gallery_ids
        assert len({cam for _, cam in recs["train"]}) >= 3
        for pid, cam in recs["query"]:
            assert any(g_pid == pid and g_cam != cam for g_pid, g_cam in recs["gallery"]), (domain, pid, cam)
        per_source[domain] = train_ids | query_ids
    keys = list(per_source)
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            assert per_source[a].isdisjoint(per_source[b]), (a, b)


def test_dev_split_identities_apart_from_real_train_and_test(runs):
    """The real hazy dev query/gallery: labelled, its own identities, every query matched from another camera."""
    out = runs["a"]
    recs = {split: [parse_name(n) for n in _names(out / f"FVRID_real/{split}_foggy")]
            for split in (*SPLITS, "dev_query", "dev_gallery")}
    ids = {split: {pid for pid, _ in r} for split, r in recs.items()}
    assert ids["dev_query"] and ids["dev_query"] == ids["dev_gallery"]
    assert ids["dev_query"].isdisjoint(ids["train"] | ids["query"] | ids["gallery"])
    for pid, cam in recs["dev_query"]:
        assert any(g_pid == pid and g_cam != cam for g_pid, g_cam in recs["dev_gallery"]), (pid, cam)
    for rel in EXPECTED_DEV_FOLDERS.values():
        assert {p.name for p in (out / rel).iterdir()}.isdisjoint(
            {p.name for rel2 in EXPECTED_FOLDERS.values() for p in (out / rel2).iterdir()})


def test_same_seed_same_bytes_other_seed_other_data(runs):
    a, b, c = (_hashes(runs[k]) for k in "abc")
    assert len(a) > 100
    assert a == b                                   # byte-identical, whatever the number of workers
    images_a = {h for k, h in a.items() if k.endswith(".jpg")}
    images_c = {h for k, h in c.items() if k.endswith(".jpg")}
    assert not images_a & images_c                  # no image of seed 1 equals one of seed 0


def test_hazy_twin_follows_scattering_model(runs):
    out = runs["a"]
    clear_dir, hazy_dir = out / "FVRID_syn" / "train_clear", out / "FVRID_syn" / "train_foggy"
    lower_contrast = 0
    names = _names(clear_dir)
    for name in names:
        clear, hazy = _read(clear_dir / name), _read(hazy_dir / name)
        lower_contrast += _local_contrast(hazy) < _local_contrast(clear)
        assert hazy.min(axis=2).mean() > clear.min(axis=2).mean() - 0.02     # haze lifts the dark channel
    assert lower_contrast >= 0.9 * len(names)
    # pixel check: recompute clear image, depth and (A, beta) and apply I = J t + A (1 - t)
    jobs = [j for j in demo.build_plan(0, SCALE) if j.src.domain == "syn"][:8]
    for job in jobs:
        clear, depth = demo.render_clear(0, job, SIZE)
        assert depth.min() == pytest.approx(0.0) and depth.max() == pytest.approx(1.0)
        airlight, beta = demo.syn_haze_params(0, job)
        assert 0.4 <= airlight <= 1.0 and 1.0 <= beta <= 5.0
        clear_file = _read(out / "FVRID_syn" / f"{job.split}_clear" / job.name)
        hazy_file = _read(out / "FVRID_syn" / f"{job.split}_foggy" / job.name)
        assert np.abs(clear_file - clear).mean() < 0.02
        expected = synthesize(clear_file, depth, beta, airlight)
        assert np.abs(hazy_file - expected).mean() < 0.02
        # the model's airlight shows where the transmission is lowest (the deepest pixels)
        far = depth > 0.95
        t = np.exp(-beta * depth[far])[:, None]
        assert np.abs(hazy_file[far] - (clear_file[far] * t + airlight * (1 - t))).mean() < 0.03


def test_real_haze_is_not_the_synthetic_model(runs):
    """Real hazy images: tinted, flat and blurred compared with the real clear ones."""
    out = runs["a"]
    real = [_read(p) for p in sorted((out / "FVRID_real" / "train_foggy").iterdir())]
    clear = [_read(p) for p in sorted((out / "FVRID_clear" / "train_clear").iterdir())]
    assert np.mean([im.std() for im in real]) < 0.8 * np.mean([im.std() for im in clear])
    grey_sky = np.mean([np.abs(im[:8].mean(axis=(0, 1)) - im[:8].mean()).max() for im in real])
    assert grey_sky > 0.01                          # the airlight is tinted, not grey


def test_refuses_then_force(tmp_path):
    out = tmp_path / "d"
    demo.generate(out, seed=2, size=32, scale=0.02, workers=1)
    (out / "notes.txt").write_text("keep me")
    keep = out / "FVRID_syn" / "train_clear" / "README"
    keep.write_text("keep me too")
    with pytest.raises(FileExistsError):
        demo.generate(out, seed=2, size=32, scale=0.02, workers=1)
    refused = _make_demo("--out", str(out), "--size", "32", "--scale", "0.02")
    assert refused.returncode == 2 and "--force" in refused.stderr
    before = _hashes(out)
    stale = out / "FVRID_syn" / "train_clear" / "99999_c001_000001_0.jpg"
    stale.write_bytes(b"old")
    demo.generate(out, seed=2, size=32, scale=0.02, force=True, workers=1)
    assert not stale.exists()                       # our own earlier images are replaced
    assert (out / "notes.txt").read_text() == "keep me" and keep.read_text() == "keep me too"
    assert _hashes(out) == before


def test_figure(runs, tmp_path):
    path = tmp_path / "fig.png"
    demo.make_figure(runs["a"], path, demo.build_plan(0, SCALE), tile=SIZE)
    img = cv2.imread(str(path))
    assert img is not None and img.shape[0] > 4 * SIZE and img.shape[1] > 8 * SIZE
    assert path.stat().st_size < 300_000


def test_force_never_deletes_a_foreign_dataset(tmp_path):
    out = tmp_path / "real_fvrid"
    folder = out / "FVRID_real" / "train_foggy"
    folder.mkdir(parents=True)
    foreign = folder / "54321_c007_000123_0.jpg"  # named like ours, but not made by the script
    foreign.write_bytes(b"someone's image")
    with pytest.raises(FileExistsError):
        demo.generate(out, seed=0, size=32, scale=0.02, workers=1)
    demo.generate(out, seed=0, size=32, scale=0.02, force=True, workers=1)
    assert foreign.read_bytes() == b"someone's image"
    assert not (out / demo.MARKER).exists()           # so a later --force still deletes nothing
