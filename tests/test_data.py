"""FVRID data layer: names, relabelling, twins, samplers, loaders, and the bad-data cases."""

import logging
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import write_image
from rvsl.config import load_config
from rvsl.data import fvrid
from rvsl.data.build import build_test_loader, build_train_loaders
from rvsl.data.fvrid import ImageRecord, pair_twins, parse_name, relabel, scan_labelled
from rvsl.data.samplers import PKBatchSampler, ShuffleBatchSampler
from rvsl.haze import sample_haze_params, synthesize
from rvsl.utils.errors import InputError


def tiny_cfg(root: Path, *opts):
    return load_config(None, ["DATASETS.DATA_PATH", str(root), "INPUT.SIZE_TRAIN", "[32, 32]",
                              "INPUT.SIZE_TEST", "[32, 32]", "DATALOADER.NUM_WORKERS", "0",
                              "DATALOADER.NUM_IDENTITIES", "3", "DATALOADER.NUM_INSTANCES", "2",
                              "DATALOADER.REAL_BATCH_SIZE", "4", *opts])


@pytest.mark.parametrize("name, expected", [
    ("00123_c004_000567_1.jpg", (123, 4)),
    ("/some/dir/-1_c012_000001_0.jpg", (-1, 12)),
    ("0002_c3_x.png", (2, 3)),
    ("car.jpg", None),
    ("00123-c004.jpg", None),
])
def test_parse_name(name, expected):
    assert parse_name(name) == expected


def test_relabel_maps_sorted_ids_to_consecutive():
    records = [ImageRecord(f"{p}.jpg", p, 1) for p in (40, 7, 40, 300, 7)]
    relabelled, mapping = relabel(records)
    assert mapping == {7: 0, 40: 1, 300: 2}
    assert [r.pid for r in relabelled] == [1, 0, 1, 2, 0]


def test_junk_identity_skipped(tmp_path):
    write_image(tmp_path / "00001_c001_000001_0.jpg", 0)
    write_image(tmp_path / "-1_c001_000002_0.jpg", 1)
    assert [r.pid for r in scan_labelled(str(tmp_path))] == [1]


def test_twins_pair_by_name_and_missing_twin_is_named(tmp_path, caplog):
    for name in ("00001_c001_a.jpg", "00002_c002_b.jpg", "00003_c001_c.jpg"):
        write_image(tmp_path / "clear" / name, 0)
    for name in ("00001_c001_a.jpg", "00002_c002_b.jpg", "00004_c001_d.jpg"):
        write_image(tmp_path / "hazy" / name, 1)
    with caplog.at_level(logging.WARNING):
        pairs = pair_twins(scan_labelled(str(tmp_path / "clear")), scan_labelled(str(tmp_path / "hazy")))
    assert [(Path(p.clear).name, Path(p.hazy).name) for p in pairs] == [("00001_c001_a.jpg",) * 2,
                                                                         ("00002_c002_b.jpg",) * 2]
    assert all(Path(p.clear).parent.name == "clear" and Path(p.hazy).parent.name == "hazy" for p in pairs)
    assert "clear image without its hazy twin" in caplog.text and "00003_c001_c.jpg" in caplog.text
    assert "hazy image without its clear twin" in caplog.text and "00004_c001_d.jpg" in caplog.text


def test_pk_sampler_batches():
    pids = np.repeat(np.arange(10), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    sampler = PKBatchSampler(pids.tolist(), num_identities=4, num_instances=3, seed=5)
    batches = list(sampler)
    assert len(batches) == len(sampler) >= 3
    for batch in batches:
        counts = Counter(pids[batch].tolist())
        assert len(counts) == 4 and set(counts.values()) == {3}
    assert list(sampler) == batches  # same epoch: same batches
    sampler.set_epoch(1)
    assert list(sampler) != batches


def test_pk_sampler_needs_enough_identities():
    with pytest.raises(ValueError, match="at least 4 identities"):
        PKBatchSampler([0, 0, 1, 1, 2], num_identities=4, num_instances=2)


def test_shuffle_sampler_covers_data_once_per_epoch():
    sampler = ShuffleBatchSampler(10, 3, seed=1)
    batches = list(sampler)
    assert len(batches) == 3 and all(len(b) == 3 for b in batches)
    flat = sum(batches, [])
    assert len(set(flat)) == 9


def test_train_loaders_stage1(tiny_fvrid):
    loaders = build_train_loaders(tiny_cfg(tiny_fvrid))
    assert loaders.real is None and loaders.num_classes == 6
    batch = next(iter(loaders.syn))
    assert batch["clear"].shape == batch["hazy"].shape == (6, 3, 32, 32)
    assert 0 <= batch["clear"].min() and batch["clear"].max() <= 1
    assert Counter(batch["pid"].tolist()) == Counter({p: 2 for p in set(batch["pid"].tolist())})
    assert len(set(batch["pid"].tolist())) == 3


def test_pair_augmentation_keeps_twins_aligned(tmp_path):
    for folder in ("FVRID_syn/train_clear", "FVRID_syn/train_foggy"):
        for pid in range(3):
            for k in range(2):
                write_image(tmp_path / folder / f"{pid:05d}_c001_{k}.jpg", seed=pid * 10 + k)  # same image
    cfg = tiny_cfg(tmp_path, "INPUT.PADDING", "6", "INPUT.FLIP_PROB", "0.5")
    batch = next(iter(build_train_loaders(cfg).syn))
    assert torch.equal(batch["clear"], batch["hazy"])


def test_real_loader_never_reads_identities(tiny_fvrid, tmp_path, monkeypatch):
    """Stage 2/3 real images: names without identities still load, and the batches hold no labels."""
    root = tmp_path / "data"
    shutil.copytree(tiny_fvrid, root)
    real = root / "FVRID_clear" / "train_clear"
    for i, path in enumerate(sorted(real.iterdir())):
        path.rename(real / f"frame_{i:04d}.jpg")  # no identity in the name at all

    def fail(name):
        raise AssertionError(f"parse_name called on {name}")

    cfg = tiny_cfg(root, "MODE.STAGE", "STAGE2")
    original = fvrid.parse_name
    calls = []
    monkeypatch.setattr(fvrid, "parse_name", lambda name: calls.append(name) or original(name))
    loaders = build_train_loaders(cfg)
    assert not any("FVRID_clear" in str(name) for name in calls)
    batch = next(iter(loaders.real))
    assert set(batch) == {"img"} and batch["img"].shape == (4, 3, 32, 32)


def test_test_loader_syn_has_clear_ground_truth(tiny_fvrid):
    loader, num_query = build_test_loader(tiny_cfg(tiny_fvrid), "SYN")
    batch = next(iter(loader))
    assert num_query == 4
    assert batch["twin"].shape == batch["img"].shape
    assert all("query_foggy" in p for p in batch["path"][:num_query])


def test_missing_folder_is_named(tiny_fvrid, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(tiny_fvrid, root)
    shutil.rmtree(root / "FVRID_syn" / "train_foggy")
    with pytest.raises(InputError, match=r"data folder not found: .*train_foggy \(DATASETS.SYN_TRAIN_FOGGY_PATH\)"):
        build_train_loaders(tiny_cfg(root))


def test_stray_and_broken_files_are_skipped_with_a_warning(tiny_fvrid, tmp_path, caplog):
    root = tmp_path / "data"
    shutil.copytree(tiny_fvrid, root)
    folder = root / "FVRID_syn" / "query_foggy"
    (folder / "notes.txt").write_text("hello")
    (folder / "00100_c009_broken_0.jpg").write_bytes(b"not a jpeg at all")
    write_image(folder / "IMG_0001.jpg", 3)
    with caplog.at_level(logging.WARNING):
        loader, num_query = build_test_loader(tiny_cfg(root), "SYN")
    assert num_query == 4
    for name in ("notes.txt", "00100_c009_broken_0.jpg", "IMG_0001.jpg"):
        assert name in caplog.text


def test_synthesize_matches_hand_computed_value():
    clear = np.full((2, 2, 3), 0.2)
    depth = np.array([[0.0, 0.5], [1.0, 0.25]])
    hazy = synthesize(clear, depth, beta=2.0, airlight=0.8)
    t = np.exp(-2.0 * 0.5)  # = 0.36788
    assert hazy[0, 0, 0] == pytest.approx(0.2)
    assert hazy[0, 1, 1] == pytest.approx(0.2 * t + 0.8 * (1 - t))
    assert hazy[0, 1, 1] == pytest.approx(0.579272, abs=1e-6)
    batch = synthesize(torch.tensor(clear).permute(2, 0, 1)[None], torch.tensor(depth)[None], 2.0, 0.8)
    assert torch.allclose(batch[0].permute(1, 2, 0), torch.tensor(hazy))


def test_haze_parameters_in_published_ranges():
    rng = np.random.default_rng(0)
    draws = np.array([sample_haze_params(rng) for _ in range(500)])
    assert draws[:, 0].min() >= 0.4 and draws[:, 0].max() <= 1.0
    assert draws[:, 1].min() >= 1.0 and draws[:, 1].max() <= 5.0
    again = np.array([sample_haze_params(np.random.default_rng(0)) for _ in range(1)])
    assert np.allclose(again[0], draws[0])
