"""losses.png through matplotlib, and TensorBoard scalars and image strips read back from the event files."""

import cv2
import numpy as np
import pytest
import torch

from model_helpers import tiny_model_config
from rvsl.engine.tensorboard import TensorBoardWriter, flatten, translation_strip
from rvsl.modeling import build_model
from rvsl.utils.plot import plot_losses, relative_curves

HISTORY = [{"epoch": 1, "losses": {"reid": 4.0, "gan": 0.5}}, {"epoch": 2, "losses": {"reid": 2.0, "gan": 0.6}},
           {"epoch": 3, "losses": {"reid": 1.0}}]


def test_relative_curves_divide_by_the_first_value():
    curves = relative_curves(HISTORY)
    np.testing.assert_allclose(curves["reid"], [1.0, 0.5, 0.25])
    np.testing.assert_allclose(curves["gan"][:2], [1.0, 1.2])
    assert np.isnan(curves["gan"][2])


def test_plot_losses_writes_a_png_of_the_asked_size(tmp_path):
    plot_losses(HISTORY, tmp_path / "sub" / "losses.png", "stage1", width=600, height=300)
    image = cv2.imread(str(tmp_path / "sub" / "losses.png"))
    assert image.shape == (300, 600, 3)
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 10  # curves and text, not a blank canvas
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["losses.png"]  # no temporary file left


def test_tensorboard_scalars_and_strip_are_written(tmp_path):
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    writer = TensorBoardWriter(tmp_path)
    writer.scalars(1, {"loss": {"reid": 2.5}, "lr": {"reid": 3e-4}, "val": {"fused": {"mAP": 0.25}}, "note": "x"})
    writer.scalars(2, {"loss": {"reid": 1.5}})
    model = build_model(tiny_model_config(), 4)
    images = torch.rand(2, 3, 32, 32)
    strip = translation_strip(model, images)
    assert strip.shape == (3, 64, 96) and torch.equal(strip[:, :32, :32], images[0]) and model.training
    writer.images(1, "translation", strip)
    writer.close()
    acc = event_accumulator.EventAccumulator(str(tmp_path), size_guidance={"images": 0})
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("loss/reid")] == [(1, 2.5), (2, 1.5)]
    assert acc.Scalars("val/fused/mAP")[0].value == 0.25 and acc.Scalars("lr/reid")[0].value == pytest.approx(3e-4)
    image = acc.Images("translation")[0]
    assert (image.height, image.width) == (64, 96)
    assert flatten({"a": {"b": 1, "c": True}}) == {"a/b": 1.0}
