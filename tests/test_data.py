"""FVRID data layer: names, relabelling, twins, samplers, loaders, and the bad-data cases."""

import logging
import random
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import TINY_CONFIG, write_image
from rvsl.config import load_config
from rvsl.data import fvrid
from rvsl.data.build import build_test_loader, build_train_loaders, has_test_set
from rvsl.data.fvrid import ImageRecord, pair_twins, parse_name, relabel, scan_labelled
from rvsl.data.samplers import PKBatchSampler, ShuffleBatchSampler
from rvsl.data.transforms import Augment, joint_augment, read_image
from rvsl.haze import sample_haze_params, synthesize
from rvsl.utils.errors import InputError
from rvsl.utils.misc import to_device


FILL = (0.4914, 0.4822, 0.4465)
NO_AUGMENT = ["INPUT.FLIP_PROB", "0.0", "INPUT.RESIZE_RANGE", "[1.0, 1.0]", "INPUT.ERASE_PROB", "0.0",
              "INPUT.PADDING", "0"]


def tiny_cfg(root: Path, *opts):
    return load_config(str(TINY_CONFIG), ["DATASETS.DATA_PATH", str(root), *opts])


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
    assert batch["clear"].dtype == torch.uint8 and batch["clear"].max() > 1  # 8-bit values, scaled on the device
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


def test_augmentation_changes_the_batch(tiny_fvrid):
    """The default (reference) augmentation alters the images; with it turned off the loader reads them as is."""
    random.seed(3)
    augmented = next(iter(build_train_loaders(tiny_cfg(tiny_fvrid)).syn))
    loaders = build_train_loaders(tiny_cfg(tiny_fvrid, *NO_AUGMENT))
    plain = next(iter(loaders.syn))
    assert torch.equal(augmented["pid"], plain["pid"])  # same sampler draw, so the same pairs
    changed = [not torch.equal(a, b) for a, b in zip(augmented["clear"], plain["clear"])]
    assert sum(changed) >= len(changed) - 1
    first = loaders.syn.dataset.items[next(iter(loaders.syn.batch_sampler))[0][0]]  # (index, augmentation seed)
    assert plain["clear"].dtype == torch.uint8  # batches travel as uint8, scaled to [0, 1] on the device
    assert torch.equal(plain["clear"][0].float() / 255, read_image(first.clear, (32, 32)))


def test_twins_get_the_same_geometry_and_erasing():
    """A hazy twin that is an exact function of the clear image stays one, pixel for pixel, after augmentation."""
    random.seed(0)
    fill = torch.tensor(FILL).view(3, 1, 1)
    augment = Augment(0.5, (1.0, 1.2), 0, 0.5, (0.02, 0.4), 0.3, FILL)
    erased = resized = 0
    for draw in range(60):
        clear = torch.rand(3, 40, 48)
        if draw == 30:
            augment = augment._replace(padding=3)
        a, b, c = joint_augment([clear, 1 - clear, clear * 0.5], augment)
        mask, pad = (a == fill).all(0), (a == 0).all(0)  # erased; zero padding (draws 30 on)
        assert torch.equal(mask, (b == fill).all(0)) and torch.equal(mask, (c == fill).all(0))
        assert (b[:, pad] == 0).all() and (c[:, pad] == 0).all() and (draw >= 30 or not pad.any())
        keep = ~mask & ~pad
        assert torch.allclose(b[:, keep], 1 - a[:, keep], atol=1e-6)
        assert torch.allclose(c[:, keep], a[:, keep] * 0.5, atol=1e-6)
        erased += bool(mask.any())
        resized += not torch.allclose(a[:, ~mask], clear[:, ~mask], atol=1e-6)
    assert 15 <= erased <= 45 and resized >= 50


def _ramp(height: int, width: int) -> torch.Tensor:
    """Channel 0 rises along x, channel 1 along y: the resize factors can be read back from the slopes."""
    x = torch.arange(width, dtype=torch.float64).expand(height, width) / width
    y = torch.arange(height, dtype=torch.float64)[:, None].expand(height, width) / height
    return torch.stack([x, y, torch.zeros_like(x)])


def test_resize_and_crop_stay_in_the_configured_range():
    """Per-axis factors in U(1, 1.2), drawn independently; the crop is the centre of the enlarged image."""
    random.seed(1)
    height, width = 64, 80
    image = _ramp(height, width)
    scales, flips = [], 0
    for _ in range(200):
        (out,) = joint_augment([image], Augment(flip_prob=0.5, resize_range=(1.0, 1.2)))
        slope_x = (out[0, 5, -3] - out[0, 5, 2]).item() / (width - 5)
        flipped = slope_x < 0  # the x ramp runs backwards
        if flipped:
            flips += 1
            out, slope_x = out.flip(-1), -slope_x
        slope_y = (out[1, -3, 5] - out[1, 2, 5]).item() / (height - 5)
        sx, sy = 1 / (slope_x * width), 1 / (slope_y * height)
        new_w, new_h = round(sx * width), round(sy * height)
        assert sx == pytest.approx(new_w / width, abs=1e-6) and sy == pytest.approx(new_h / height, abs=1e-6)
        # Output column k shows source x = (k + left + 0.5) / sx - 0.5 (flipped back: the other half-pixel).
        left = (new_w - width + flipped) // 2
        expected = ((torch.arange(width) + left + 0.5) / sx - 0.5) / width
        assert torch.allclose(out[0, 7, 2:-2], expected[2:-2].double(), atol=1e-5)
        scales.append((sx, sy))
    scales = np.array(scales)
    assert scales.min() >= 1.0 and scales.max() <= 1.2 + 0.5 / height
    assert 70 <= flips <= 130
    assert scales.min(0).max() < 1.03 and scales.max(0).min() > 1.17
    assert np.mean(scales[:, 0] != scales[:, 1]) > 0.8 and abs(np.corrcoef(scales.T)[0, 1]) < 0.3


def test_random_erasing_statistics():
    """Erasing with p 0.5: one filled rectangle, area fraction in [0.02, 0.4], aspect in [0.3, 1 / 0.3]."""
    random.seed(2)
    size = 100
    fill = torch.tensor(FILL).view(3, 1, 1)
    fractions, aspects = [], []
    for _ in range(400):
        (out,) = joint_augment([torch.zeros(3, size, size)], Augment(erase_prob=0.5))
        mask = (out == fill).all(0)
        if not mask.any():
            assert torch.equal(out, torch.zeros(3, size, size))
            continue
        rows, cols = mask.any(1).nonzero()[:, 0], mask.any(0).nonzero()[:, 0]
        h, w = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
        assert mask.sum() == h * w and (out[:, ~mask] == 0).all()  # one filled rectangle, nothing else
        fractions.append(float(h * w) / size ** 2)
        aspects.append(float(h) / float(w))
    assert 160 <= len(fractions) <= 240
    assert 0.02 - 0.005 <= min(fractions) < 0.04 and 0.35 < max(fractions) <= 0.4 + 0.01
    assert 0.3 * 0.9 <= min(aspects) < 0.4 and 2.8 < max(aspects) <= 1 / 0.3 * 1.1


def _train_pids(loaders) -> set:
    return {fvrid.parse_name(Path(p.clear).name)[0] for p in loaders.syn.dataset.items}


def test_synthetic_validation_split(tiny_fvrid):
    """VAL.SYN_IDENTITIES identities leave training and form a query/gallery set of hazy images with clear twins."""
    cfg = tiny_cfg(tiny_fvrid, "VAL.SYN_IDENTITIES", "2", "MODE.SEED", "4")
    loaders = build_train_loaders(cfg)
    loader, num_query = loaders.val_syn
    everything = sorted({r.pid for r in scan_labelled(str(tiny_fvrid / "FVRID_syn" / "train_clear"))})
    held = {everything[i] for i in np.random.default_rng(4).permutation(len(everything))[:2]}
    assert loaders.num_classes == 4 and _train_pids(loaders) == set(everything) - held
    batch = next(iter(loader))
    assert set(batch) == {"img", "pid", "camid", "path", "twin"}
    assert set(batch["pid"].tolist()) == held and len(batch["pid"]) == 2 * 2 * 2  # 2 ids x 2 cams x 2 images
    assert num_query == 4  # one query per held-out identity and camera: the first file name
    for i, path in enumerate(batch["path"]):
        same = sorted(p for p, q, c in zip(batch["path"], batch["pid"], batch["camid"])
                      if q == batch["pid"][i] and c == batch["camid"][i])
        assert "train_foggy" in path and (path == same[0]) == (i < num_query)
        twin = str(tiny_fvrid / "FVRID_syn" / "train_clear" / Path(path).name)
        assert torch.equal(batch["twin"][i], read_image(twin, (32, 32)))
    other = build_train_loaders(tiny_cfg(tiny_fvrid, "VAL.SYN_IDENTITIES", "2", "MODE.SEED", "5"))
    assert _train_pids(other) != _train_pids(loaders)
    assert build_train_loaders(tiny_cfg(tiny_fvrid)).val_syn is None


def test_validation_split_errors_name_the_key(tiny_fvrid):
    with pytest.raises(InputError, match=r"VAL.SYN_IDENTITIES is 6 but .*train_clear has only 6 identities"):
        build_train_loaders(tiny_cfg(tiny_fvrid, "VAL.SYN_IDENTITIES", "6"))
    with pytest.raises(InputError, match=r"DATALOADER.NUM_IDENTITIES: .*VAL.SYN_IDENTITIES = 4 are held out"):
        build_train_loaders(tiny_cfg(tiny_fvrid, "VAL.SYN_IDENTITIES", "4"))


def test_real_test_folders_are_optional(tiny_fvrid, tmp_path):
    """Stages 2/3 need only their unlabelled training folder; an absent real test set is reported, not read."""
    root = tmp_path / "data"
    shutil.copytree(tiny_fvrid, root)
    for name in ("query_clear", "gallery_clear"):
        shutil.rmtree(root / "FVRID_clear" / name)
    cfg = tiny_cfg(root, "MODE.STAGE", "STAGE2", "VAL.SYN_IDENTITIES", "1")
    loaders = build_train_loaders(cfg)
    assert next(iter(loaders.real))["img"].shape == (4, 3, 32, 32)
    assert loaders.val_syn[1] == 2
    assert [has_test_set(cfg, name) for name in ("SYN", "REAL_CLEAR", "REAL_FOGGY")] == [True, False, True]
    shutil.rmtree(root / "FVRID_syn" / "gallery_clear")
    assert not has_test_set(cfg, "SYN")
    with pytest.raises(InputError, match=r"data folder not found: .*query_clear \(DATASETS.REAL_QUERY_CLEAR_PATH\)"):
        build_test_loader(cfg, "REAL_CLEAR")
    with pytest.raises(InputError, match="TEST.DATA is 'REAL'"):
        has_test_set(cfg, "REAL")


def test_real_images_held_out_unlabelled(tiny_fvrid, tmp_path, monkeypatch):
    """VAL.REAL_IMAGES leave the real training set as bare paths (never parsed) and come back unaugmented."""
    root = tmp_path / "data"
    shutil.copytree(tiny_fvrid, root)
    real = root / "FVRID_real" / "train_foggy"
    for i, path in enumerate(sorted(real.iterdir())):
        path.rename(real / f"frame {i:04d}.jpg")
    parse = fvrid.parse_name
    monkeypatch.setattr(fvrid, "parse_name",
                        lambda name: pytest.fail(f"parsed {name}") if "FVRID_real" in str(name) else parse(name))
    cfg = tiny_cfg(root, "MODE.STAGE", "STAGE3", "VAL.REAL_IMAGES", "5", "MODE.SEED", "2")
    loaders = build_train_loaders(cfg)
    trained = set(loaders.real.dataset.items)
    held = [item["path"] for item in loaders.val_real.dataset]
    assert len(held) == 5 and not trained & set(held) and len(trained) + 5 == len(list(real.iterdir()))
    batch = next(iter(loaders.val_real))
    assert set(batch) == {"img", "path"}
    assert torch.equal(batch["img"][0], read_image(batch["path"][0], (32, 32)))
    with pytest.raises(InputError, match=r"VAL.REAL_IMAGES is 24 but .*train_foggy has only 24 images"):
        build_train_loaders(tiny_cfg(root, "MODE.STAGE", "STAGE3", "VAL.REAL_IMAGES", "24"))


@pytest.mark.parametrize("stage, loader", [("STAGE1", "syn"), ("STAGE3", "real")])
def test_augmentation_does_not_depend_on_workers(tiny_fvrid, stage, loader):
    """Each item's augmentation is drawn from (seed, epoch, batch): persistent workers, their number and a
    resumed run see the same images as a single-process loader."""
    epochs = []
    for workers in ("0", "2"):
        loaders = build_train_loaders(tiny_cfg(tiny_fvrid, "DATALOADER.NUM_WORKERS", workers, "MODE.STAGE", stage))
        chosen = getattr(loaders, loader)
        assert chosen.persistent_workers == (workers == "2")
        batches = []
        for epoch in (0, 1):
            chosen.batch_sampler.set_epoch(epoch)
            batches.append([b["clear" if loader == "syn" else "img"] for b in chosen])
        epochs.append(batches)
    for single, parallel in zip(*epochs):
        assert all(torch.equal(a, b) for a, b in zip(single, parallel))
    assert not torch.equal(epochs[0][0][0], epochs[0][1][0])  # another epoch, other draws


def test_uint8_batches_become_unit_floats_on_the_device():
    """to_device scales uint8 images to [0, 1] (other dtypes untouched) and lays 4-D batches out channels-last."""
    images = torch.randint(0, 256, (2, 3, 4, 5), dtype=torch.uint8)
    batch = to_device({"img": images, "pid": torch.tensor([3, 4]), "path": ["a", "b"]}, torch.device("cpu"),
                      channels_last=True)
    assert batch["img"].dtype == torch.float32 and torch.equal(batch["img"] * 255, images.float())
    assert batch["img"].is_contiguous(memory_format=torch.channels_last)
    assert batch["pid"].dtype == torch.int64 and batch["path"] == ["a", "b"]


def test_photometric_augmentation_same_draw_for_twins():
    """Jitter, blur and noise: one draw for both twins, each change seen, the values kept in [0, 1]."""
    rng = random.Random(3)
    clear = torch.rand(3, 32, 32)
    jitter = Augment(jitter_prob=1.0, jitter=(0.3, 0.3, 0.4, 0.2))
    blur = Augment(blur_prob=1.0, blur_sigma=(0.05, 0.05))
    noise = Augment(noise_std=0.1)
    for augment in (jitter, blur, noise):
        a, b = joint_augment([clear, clear.clone()], augment, rng)
        assert torch.equal(a, b) and a.min() >= 0 and a.max() <= 1
        assert not torch.allclose(a, clear, atol=1e-3)
    (blurred,) = joint_augment([clear], blur, rng)
    assert blurred.std() < 0.6 * clear.std()                # a 1.6-pixel Gaussian smooths pixel noise
    flat = torch.full((3, 16, 16), 0.5)
    (noisy,) = joint_augment([flat], Augment(noise_std=0.2), random.Random(0))
    assert 0 < (noisy - flat).std() < 0.2
    gray = torch.full((3, 8, 8), 0.4)
    casts = [joint_augment([gray], Augment(jitter_prob=1.0, jitter=(0.0, 0.0, 0.0, 0.25)), rng)[0][:, 0, 0]
             for _ in range(50)]
    assert all((c >= 0.4 * 0.75 - 1e-6).all() and (c <= 0.4 * 1.25 + 1e-6).all() for c in casts)
    assert max(float(c.max() - c.min()) for c in casts) > 0.1   # the channels get their own gains: a tint
    (same,) = joint_augment([clear], Augment(), rng)
    assert torch.equal(same, clear)                             # the defaults change nothing


def test_dev_split_is_an_evaluation_set(tiny_fvrid, tmp_path):
    """TEST.DATA REAL_FOGGY_DEV reads the dev query/gallery folders, and only when they exist."""
    root = tmp_path / "data"
    shutil.copytree(tiny_fvrid, root)
    cfg = tiny_cfg(root, "TEST.DATA", "REAL_FOGGY_DEV")
    assert not has_test_set(cfg, "REAL_FOGGY_DEV")
    for split, cams in (("dev_query", (3,)), ("dev_gallery", (1, 2))):
        for pid in (2500, 2501):
            for cam in cams:
                write_image(root / "FVRID_real" / f"{split}_foggy" / f"{pid:05d}_c{cam:03d}_{pid + cam:06d}_0.jpg",
                            seed=pid + cam)
    assert has_test_set(cfg, "REAL_FOGGY_DEV")
    loader, num_query = build_test_loader(cfg, "REAL_FOGGY_DEV")
    batch = next(iter(loader))
    assert num_query == 2 and sorted(batch["pid"].tolist()) == [2500, 2500, 2500, 2501, 2501, 2501]
    assert all("dev_" in p for p in batch["path"])
