"""rvsl.Predictor: features, dehazed and re-hazed images for paths, folders, arrays and tensors."""

import cv2
import numpy as np
import pytest
import torch

from rvsl import Predictor
from rvsl.api.predictor import image_paths
from rvsl.checkpoint import read_weights
from rvsl.config import get_cfg_defaults
from rvsl.data.build import make_loader
from rvsl.data.transforms import read_image
from rvsl.modeling import build_model
from rvsl.utils.errors import InputError


def reference_outputs(checkpoint, paths):
    """Features and dehazed images computed directly with the model, image by image."""
    weights = read_weights(str(checkpoint), "test", formats=("rvsl",))
    model = build_model(weights.config, weights.meta["num_classes"])
    model.load_state_dict(weights.state)
    model.eval()
    out = {"clear": [], "hazy": [], "dehazed": []}
    with torch.no_grad():
        for path in paths:
            x = read_image(str(path), (32, 32))[None]
            out["clear"].append(model(x, "clear")[0].numpy())
            out["hazy"].append(model(x, "hazy")[0].numpy())
            out["dehazed"].append(model.render_clear(*model.encode(x, "hazy"))[0].numpy())
    return {k: np.stack(v) for k, v in out.items()}


@pytest.fixture(scope="module")
def predictor(tiny_checkpoint):
    return Predictor(str(tiny_checkpoint), device="cpu", batch_size=3)


def test_folder_features_match_the_model_image_by_image(predictor, tiny_checkpoint, demo_images):
    feats = predictor.features(demo_images)
    paths = sorted(demo_images.iterdir())
    assert image_paths(demo_images) == [str(p) for p in paths]  # a folder's rows, in this order
    expected = reference_outputs(tiny_checkpoint, paths)
    for name in ("clear", "hazy"):
        assert feats[name].dtype == np.float32 and feats[name].shape == (len(paths), 512) and len(paths) >= 5
        np.testing.assert_allclose(feats[name], expected[name], rtol=1e-4, atol=1e-5)
    unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
    np.testing.assert_allclose(feats["fused"], (unit(expected["clear"]) + unit(expected["hazy"])) / 2, atol=1e-5)


def test_arrays_tensors_and_paths_give_the_same_features(predictor, demo_images):
    paths = sorted(demo_images.iterdir())[:4]
    from_paths = predictor.features([str(p) for p in paths])["hazy"]
    arrays = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in paths]
    np.testing.assert_allclose(predictor.features(arrays)["hazy"], from_paths, atol=1e-5)
    np.testing.assert_allclose(predictor.features(np.stack(arrays))["hazy"], from_paths, atol=1e-5)
    tensor = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255
    np.testing.assert_allclose(predictor.features(tensor)["hazy"], from_paths, atol=1e-5)
    big = cv2.resize(arrays[0], (64, 48))  # resized to SIZE_TEST like a file would be
    assert predictor.features(big)["hazy"].shape == (1, 512)


def test_dehaze_and_rehaze(predictor, tiny_checkpoint, demo_images):
    paths = sorted(demo_images.iterdir())[:5]
    dehazed = predictor.dehaze([str(p) for p in paths])
    assert dehazed.shape == (5, 3, 32, 32) and dehazed.dtype == np.float32
    np.testing.assert_allclose(dehazed, reference_outputs(tiny_checkpoint, paths)["dehazed"], atol=1e-5)
    rehazed = predictor.rehaze([str(p) for p in paths])
    assert rehazed.shape == (5, 3, 32, 32) and 0 <= rehazed.min() and rehazed.max() <= 1
    assert not np.allclose(rehazed, dehazed)


def test_bad_inputs_are_named(predictor, demo_images, tmp_path):
    with pytest.raises(InputError, match="nowhere"):
        predictor.features(str(tmp_path / "nowhere"))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(InputError, match="broken.jpg"):
        predictor.features([str(broken)])
    with pytest.raises(InputError, match="uint8"):
        predictor.features(np.zeros((32, 32, 3), np.float32))
    with pytest.raises(InputError, match="not-a-checkpoint"):
        Predictor(str(tmp_path / "not-a-checkpoint.pth"))


def test_size_is_the_checkpoints_unless_given(tiny_checkpoint, demo_images):
    """The checkpoint's INPUT.SIZE_TEST (32 x 32) whatever ``cfg`` says; an explicit ``size`` wins."""
    from rvsl.config import load_config
    other = load_config(None, ["INPUT.SIZE_TEST", "[64, 64]"])
    assert Predictor(str(tiny_checkpoint), device="cpu", cfg=other).size == (32, 32)
    given = Predictor(str(tiny_checkpoint), device="cpu", size=(40, 48))
    assert given.size == (40, 48)
    assert given.dehaze(sorted(demo_images.iterdir())[:2]).shape == (2, 3, 40, 48)


def test_cpu_predictor_runs_float32_in_this_process(tiny_checkpoint, demo_images, monkeypatch):
    """On the CPU the run's AMP and channels-last settings change nothing: no autocast, NCHW, no loader workers,
    float32 features equal to the model's (the CUDA path: bf16 autocast, channels-last, pinned workers)."""
    cfg = get_cfg_defaults()
    cfg.merge_from_list(["SOLVER.AMP", "bf16", "MODEL.CHANNELS_LAST", "True", "DATALOADER.NUM_WORKERS", "4"])
    predictor = Predictor(str(tiny_checkpoint), device="cpu", batch_size=4, cfg=cfg)
    assert predictor.amp_dtype is None and predictor.channels_last is False
    loaders = []
    import rvsl.api.predictor as module
    monkeypatch.setattr(module, "make_loader", lambda *a, **kw: loaders.append(kw) or make_loader(*a, **kw))
    feats = predictor.features(demo_images)
    assert [kw["num_workers"] for kw in loaders] == [0]
    paths = sorted(demo_images.iterdir())
    expected = reference_outputs(tiny_checkpoint, paths)
    for name in ("clear", "hazy", "fused"):
        assert feats[name].dtype == np.float32
    np.testing.assert_allclose(feats["hazy"], expected["hazy"], rtol=1e-4, atol=1e-5)
    batches = list(predictor.dehazed_batches([str(p) for p in paths]))
    assert [len(b) for b in batches] == [4] * (len(paths) // 4) + ([len(paths) % 4] if len(paths) % 4 else [])
    np.testing.assert_allclose(np.concatenate(batches), expected["dehazed"], atol=1e-5)
