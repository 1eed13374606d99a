"""export.py: four ONNX graphs whose onnxruntime outputs agree with PyTorch, at any batch size."""

import numpy as np
import pytest
import torch

from helpers import run_cli
from rvsl import Predictor
from rvsl.api.export import export_onnx
from rvsl.config import load_config
from rvsl.modeling import build_model

ort = pytest.importorskip("onnxruntime")

REL_TOL = 1e-4  # of the largest feature magnitude, float32


@pytest.fixture(scope="module")
def exported(tiny_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx")
    result = run_cli(["RVSL/export.py", "--weight", str(tiny_checkpoint), "--output", str(out), "MODEL.DEVICE", "cpu"])
    assert result.returncode == 0, result.stderr[-3000:]
    return out


@pytest.mark.parametrize("batch", [1, 5])
def test_onnxruntime_agrees_with_pytorch(exported, tiny_checkpoint, batch):
    predictor = Predictor(str(tiny_checkpoint), device="cpu")
    images = torch.rand(batch, 3, 32, 32, generator=torch.Generator().manual_seed(batch))
    torch_out = predictor.features(images)
    torch_out["dehaze"] = predictor.dehaze(images)
    for stem, key in (("reid_clear", "clear"), ("reid_hazy", "hazy"), ("reid_fused", "fused"), ("dehaze", "dehaze")):
        session = ort.InferenceSession(str(exported / f"{stem}.onnx"), providers=["CPUExecutionProvider"])
        (got,) = session.run(None, {"images": images.numpy()})
        expected = torch_out[key]
        assert got.dtype == np.float32 and got.shape == expected.shape
        max_abs = float(np.abs(got - expected).max())
        assert max_abs <= REL_TOL * float(np.abs(expected).max()), f"{stem}: max abs difference {max_abs:.3g}"


def test_export_in_process_leaves_the_model_in_eval_mode(tiny_checkpoint, tmp_path):
    predictor = Predictor(str(tiny_checkpoint), device="cpu")
    images = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    before = predictor.features(images)["hazy"]
    export_onnx(predictor.model, (32, 32), tmp_path)
    assert not predictor.model.training
    np.testing.assert_array_equal(predictor.features(images)["hazy"], before)


def test_ibn_backbone_exports_too(tmp_path):
    cfg = load_config(None, ["MODEL.NAME", "resnet50_ibn_a", "INPUT.SIZE_TEST", "[32, 32]"])
    model = build_model(cfg, 3).eval()
    export_onnx(model, (32, 32), tmp_path)
    images = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = model(images, "hazy").numpy()
    session = ort.InferenceSession(str(tmp_path / "reid_hazy.onnx"), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"images": images.numpy()})
    assert float(np.abs(got - expected).max()) <= REL_TOL * float(np.abs(expected).max())


def test_export_bad_weight_exits_2(tmp_path):
    bad = tmp_path / "weights.pth"
    bad.write_bytes(b"not a checkpoint")
    result = run_cli(["RVSL/export.py", "--weight", str(bad), "--output", str(tmp_path / "out")])
    assert result.returncode == 2 and "weights.pth" in result.stderr and not (tmp_path / "out").exists()
