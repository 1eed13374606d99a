"""rvsl.Predictor: features, dehazed and re-hazed images for paths, folders, arrays and tensors."""

import cv2
import numpy as np
import pytest
import torch

from rvsl import Predictor
from rvsl.config import config_from_dict
from rvsl.data.transforms import read_image
from rvsl.engine.checkpoint import load_checkpoint
from rvsl.modeling import build_model
from rvsl.utils.errors import InputError


def reference_outputs(checkpoint, paths):
    """Features and dehazed images computed directly with the model, image by image."""
    payload = load_checkpoint(str(checkpoint), "test")
    model = build_model(config_from_dict(payload["config"]), payload["num_classes"])
    model.load_state_dict(payload["model"])
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
    assert predictor.names == [p.name for p in paths]
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
