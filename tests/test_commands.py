"""extract.py, search.py and dehaze.py through the real command line on demo images."""

import csv
import shutil

import cv2
import numpy as np
import pytest

from helpers import run_cli
from rvsl import Predictor

CPU = ["MODEL.DEVICE", "cpu", "TEST.IMS_PER_BATCH", "3"]


@pytest.fixture(scope="module")
def extracted(tiny_checkpoint, demo_images, tmp_path_factory):
    out = tmp_path_factory.mktemp("extract") / "features out"
    result = run_cli(["RVSL/extract.py", "--weight", str(tiny_checkpoint), "--input", str(demo_images),
                      "--output", str(out), *CPU])
    return result, out


def test_extract_writes_features_and_names_like_the_predictor(extracted, tiny_checkpoint, demo_images):
    result, out = extracted
    assert result.returncode == 0, result.stderr[-3000:]
    names = (out / "names.txt").read_text().splitlines()
    assert names == sorted(p.name for p in demo_images.iterdir()) and " " in names[0]
    expected = Predictor(str(tiny_checkpoint), device="cpu").features(demo_images)
    for name in ("clear", "hazy", "fused"):
        feats = np.load(out / f"features_{name}.npy")
        assert feats.dtype == np.float32 and feats.shape == (len(names), 512)
        np.testing.assert_allclose(feats, expected[name], atol=1e-5)
    assert f"{len(names)} images" in result.stderr


def test_extract_bad_inputs_exit_2_and_write_nothing(tiny_checkpoint, demo_images, tmp_path):
    missing = run_cli(["RVSL/extract.py", "--weight", str(tiny_checkpoint), "--input", str(tmp_path / "no such dir"),
                       "--output", str(tmp_path / "out"), *CPU])
    assert missing.returncode == 2 and "--input: no such file or folder" in missing.stderr
    assert "no such dir" in missing.stderr and "Traceback" not in missing.stderr
    folder = tmp_path / "imgs"
    shutil.copytree(demo_images, folder)
    (folder / "zz broken.jpg").write_bytes(b"\xff\xd8 truncated")
    broken = run_cli(["RVSL/extract.py", "--weight", str(tiny_checkpoint), "--input", str(folder),
                      "--output", str(tmp_path / "out"), *CPU])
    assert broken.returncode == 2 and "zz broken.jpg" in broken.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    weight = run_cli(["RVSL/extract.py", "--weight", str(tmp_path / "nope.pth"), "--input", str(folder),
                      "--output", str(tmp_path / "out"), *CPU])
    assert weight.returncode == 2 and "--weight" in weight.stderr and "nope.pth" in weight.stderr


def read_results(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_search_against_folder_and_extract_output(extracted, tiny_checkpoint, demo_images, tmp_path):
    _, features_dir = extracted
    query = tmp_path / "query"
    query.mkdir()
    for p in sorted(demo_images.iterdir())[:2]:
        shutil.copy(p, query / p.name)
    tables = []
    for gallery in (demo_images, features_dir):
        out = tmp_path / f"out_{len(tables)}"
        result = run_cli(["RVSL/search.py", "--weight", str(tiny_checkpoint), "--query", str(query), "--gallery",
                          str(gallery), "--output", str(out), "--topk", "3", *CPU])
        assert result.returncode == 0, result.stderr[-3000:]
        rows = read_results(out / "results.csv")
        assert len(rows) == 2 * 3
        for p in query.iterdir():
            assert cv2.imread(str(out / "ranklists" / f"{p.name}.jpg")) is not None
        tables.append(rows)
    assert [(r["query"], r["gallery"]) for r in tables[0]] == [(r["query"], r["gallery"]) for r in tables[1]]
    # independent brute force on the extracted fused features: each query finds itself first
    feats = np.load(features_dir / "features_fused.npy")
    names = (features_dir / "names.txt").read_text().splitlines()
    dist = ((feats[:2, None, :] - feats[None, :, :]) ** 2).sum(-1)
    for qi in range(2):
        order = np.argsort(dist[qi], kind="stable")[:3]
        got = [r for r in tables[1] if r["query"] == names[qi]]
        assert [r["gallery"] for r in got] == [names[j] for j in order]
        np.testing.assert_allclose([float(r["distance"]) for r in got], dist[qi][order], rtol=1e-4, atol=1e-6)
    assert got[0]["gallery"] == got[0]["query"]


def test_search_bad_gallery_exits_2(tiny_checkpoint, demo_images, tmp_path):
    result = run_cli(["RVSL/search.py", "--weight", str(tiny_checkpoint), "--query", str(demo_images), "--gallery",
                      str(tmp_path / "no gallery"), "--output", str(tmp_path / "out"), *CPU])
    assert result.returncode == 2 and "no gallery" in result.stderr and not (tmp_path / "out").exists()


def test_dehaze_writes_same_names_at_original_size(tiny_checkpoint, demo_images, tmp_path):
    folder = tmp_path / "in"
    shutil.copytree(demo_images, folder)
    big = folder / "wide shot.png"
    cv2.imwrite(str(big), cv2.resize(cv2.imread(str(next(folder.glob("*.jpg")))), (80, 40)))
    out = tmp_path / "out"
    result = run_cli(["RVSL/dehaze.py", "--weight", str(tiny_checkpoint), "--input", str(folder), "--output",
                      str(out), "--sheet", str(tmp_path / "sheet.jpg"), *CPU])
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in folder.iterdir())
    assert cv2.imread(str(out / "wide shot.png")).shape == (40, 80, 3)
    n = len(list(folder.iterdir()))
    assert cv2.imread(str(tmp_path / "sheet.jpg")).shape == (32 * n, 64, 3)
    expected = Predictor(str(tiny_checkpoint), device="cpu").dehaze(str(folder / "wide shot.png"))[0]
    got = cv2.cvtColor(cv2.resize(cv2.imread(str(out / "wide shot.png")), (32, 32)), cv2.COLOR_BGR2RGB) / 255.0
    assert np.abs(got - expected.transpose(1, 2, 0)).mean() < 0.05


def test_dehaze_unreadable_image_exits_2_and_writes_nothing(tiny_checkpoint, demo_images, tmp_path):
    folder = tmp_path / "in"
    shutil.copytree(demo_images, folder)
    (folder / "bad one.jpg").write_bytes(b"\xff\xd8 truncated")
    out = tmp_path / "out"
    result = run_cli(["RVSL/dehaze.py", "--weight", str(tiny_checkpoint), "--input", str(folder), "--output",
                      str(out), *CPU])
    assert result.returncode == 2 and "bad one.jpg" in result.stderr and not out.exists()


def test_exact_and_faiss_search_agree_with_brute_force():
    from rvsl.api.search import exact_topk, faiss_topk

    rng = np.random.default_rng(0)
    query, gallery = rng.normal(size=(7, 16)).astype(np.float32), rng.normal(size=(50, 16)).astype(np.float32)
    dist = ((query[:, None] - gallery[None]) ** 2).sum(-1)
    order = np.argsort(dist, axis=1, kind="stable")[:, :5]
    d, i = exact_topk(query, gallery, 5)
    np.testing.assert_array_equal(i, order)
    np.testing.assert_allclose(d, np.take_along_axis(dist, order, 1), rtol=1e-5)
    pytest.importorskip("faiss")
    d2, i2 = faiss_topk(query, gallery, 5)
    np.testing.assert_array_equal(i2, order)
    np.testing.assert_allclose(d2, d, rtol=1e-4)


def test_dehaze_refuses_to_write_over_its_inputs(tiny_checkpoint, demo_images):
    before = {p.name: p.read_bytes() for p in demo_images.iterdir()}
    result = run_cli(["RVSL/dehaze.py", "--weight", str(tiny_checkpoint), "--input", str(demo_images),
                      "--output", str(demo_images)])
    assert result.returncode == 2 and "holds the input images" in result.stderr
    assert {p.name: p.read_bytes() for p in demo_images.iterdir()} == before
