"""Networks: parameter split, shapes, weight loading and the image pool."""

import pytest
import torch
import torchvision

from rvsl.config import get_cfg_defaults
from rvsl.modeling import (
    RVSL,
    ImagePool,
    PatchDiscriminator,
    build_discriminators,
    build_model,
    load_backbone_weights,
    load_matching_state,
)
from rvsl.modeling.resnet_ibn_a import IBN, resnet50_ibn_a
from rvsl.utils.errors import InputError
from rvsl.utils.io import safe_load


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope="module")
def small_model() -> RVSL:
    torch.manual_seed(0)
    return RVSL("resnet18", num_classes=5)


@pytest.mark.parametrize("name", ["resnet50", "resnet50_ibn_a"])
def test_parameter_split_of_design(name):
    model = RVSL(name, num_classes=7)
    assert _count(model.enc_clear) == _count(model.enc_hazy) == 225_344
    assert _count(model.gen_hazy) == _count(model.gen_clear) == 369_987
    assert sum(_count(getattr(model.reid, f"layer{i}")) for i in (2, 3, 4)) == 23_282_688
    assert _count(model.reid.bnneck) == 4_096
    assert model.reid.classifier.weight.shape == (7, 2048) and model.reid.classifier.bias is None
    assert not model.reid.bnneck.bias.requires_grad
    assert model.feat_dim == 2048 and model.r1_channels == 256
    assert model.enc_clear.conv1.weight.data_ptr() != model.enc_hazy.conv1.weight.data_ptr()
    assert _count(PatchDiscriminator()) == 2_764_737


def test_ibn_a_layout():
    model = RVSL("resnet50_ibn_a", num_classes=2)
    assert isinstance(model.enc_clear.layer1[0].bn1, IBN)
    assert isinstance(model.reid.layer3[-1].bn1, IBN)
    assert isinstance(model.reid.layer4[0].bn1, torch.nn.BatchNorm2d)
    ibn = model.reid.layer2[0].bn1
    assert ibn.IN.num_features == 64 and ibn.BN.num_features == 64 and ibn.IN.affine


def test_shapes_resnet18(small_model):
    model = small_model.train()
    images = torch.rand(4, 3, 64, 64)
    f1, r1 = model.encode(images, "clear")
    assert f1.shape == (4, 64, 32, 32) and r1.shape == (4, 64, 16, 16)
    out = model.embed(r1)
    assert out.global_feat.shape == out.bn_feat.shape == (4, 512) and out.logits.shape == (4, 5)
    for render, domain in ((model.render_hazy, "clear"), (model.render_clear, "hazy")):
        rendered = render(*model.encode(images, domain))
        assert rendered.shape == images.shape
        assert rendered.min() >= 0 and rendered.max() <= 1


def test_reference_generators_train_unbounded_and_clamp_at_test_time():
    torch.manual_seed(1)
    model = RVSL("resnet18", num_classes=5, generator="reference").train()
    images = torch.rand(2, 3, 64, 64)
    raw = model.render_clear(*model.encode(images, "hazy"))
    assert raw.shape == images.shape and (raw.min() < 0 or raw.max() > 1)  # no activation while training
    model.eval()
    with torch.no_grad():
        shown = model.render_clear(*model.encode(images, "hazy"))
    assert shown.min() >= 0 and shown.max() <= 1
    with pytest.raises(InputError, match="MODEL.GENERATOR"):
        RVSL("resnet18", num_classes=5, generator="sigmoid")


def test_generator_keeps_odd_sizes_when_asked(small_model):
    images = torch.rand(2, 3, 50, 38)
    f1, r1 = small_model.encode(images, "hazy")
    assert small_model.render_clear(f1, r1, out_size=(50, 38)).shape == (2, 3, 50, 38)


def test_eval_forward_returns_bn_features(small_model):
    model = small_model.eval()
    images = torch.rand(3, 3, 64, 64)
    with torch.no_grad():
        feats = model(images)
        assert feats.shape == (3, model.feat_dim)
        assert torch.allclose(feats, model.embed(model.encode(images, "hazy")[1]).bn_feat)
        assert not torch.allclose(feats, model(images, "clear"))
    with pytest.raises(InputError, match="domain"):
        model(images, "foggy")
    with pytest.raises(InputError, match="B x 3"):
        model(images[:, :1])


def test_features_leave_the_model_as_float32_under_bf16_autocast(small_model):
    model = small_model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model.embed(model.encode(torch.rand(4, 3, 64, 64), "hazy")[1])
        assert out.global_feat.dtype == out.bn_feat.dtype == torch.float32
        model.eval()
        with torch.no_grad():
            assert model(torch.rand(2, 3, 64, 64)).dtype == torch.float32


def test_encoder_normalises_internally(small_model):
    model = small_model.eval()
    images = torch.rand(2, 3, 32, 32)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    normalised = (images - mean) / std
    with torch.no_grad():
        f1, r1 = model.encode(images, "clear")
        f1_ref, r1_ref = model.enc_clear(normalised)
    assert torch.allclose(f1, f1_ref, atol=1e-6) and torch.allclose(r1, r1_ref, atol=1e-6)


def test_last_stride_sets_layer4_map():
    images = torch.rand(2, 3, 64, 64)
    sizes = {}
    for stride in (1, 2):
        model = RVSL("resnet18", num_classes=3, last_stride=stride).eval()
        with torch.no_grad():
            r1 = model.encode(images, "clear")[1]
            sizes[stride] = model.reid.layer4(model.reid.layer3(model.reid.layer2(r1))).shape[-2:]
    assert sizes[2] == (2, 2) and sizes[1] == (4, 4)
    with pytest.raises(InputError, match="LAST_STRIDE"):
        RVSL("resnet18", num_classes=3, last_stride=3)
    with pytest.raises(InputError, match="resnet9"):
        RVSL("resnet9", num_classes=3)


def test_build_from_config():
    cfg = get_cfg_defaults()
    cfg.MODEL.NAME = "resnet34"
    cfg.MODEL.LAST_STRIDE = 1
    cfg.MODEL.DISC_CHANNELS = 8
    model = build_model(cfg, num_classes=4)
    assert model.feat_dim == 512 and model.reid.layer4[0].conv1.stride == (1, 1)
    discs = build_discriminators(cfg)
    for domain in ("clear", "hazy"):
        assert discs[domain](torch.rand(2, 3, 64, 64)).shape == (2, 1, 3, 3)
    assert discs["clear"] is not discs["hazy"]


def test_load_matching_state_skips_mismatched_classifier(small_model):
    other = RVSL("resnet18", num_classes=10)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(1.0)
    loaded, skipped = load_matching_state(small_model, other.state_dict())
    assert "reid.classifier.weight" not in loaded and "enc_clear.conv1.weight" in loaded
    assert skipped == ["reid.classifier.weight: shape (10, 512) vs (5, 512)"]
    assert torch.equal(small_model.reid.layer4[0].conv1.weight, other.reid.layer4[0].conv1.weight)
    assert not torch.equal(small_model.reid.classifier.weight, other.reid.classifier.weight[:5])


def test_load_backbone_weights_torchvision(tmp_path):
    torch.manual_seed(1)
    reference = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in reference.state_dict().items()}}, path)
    model = RVSL("resnet18", num_classes=3)
    load_backbone_weights(model, safe_load(str(path), "MODEL.PRETRAIN_PATH"), str(path))
    assert torch.equal(model.enc_clear.conv1.weight, reference.conv1.weight)
    assert torch.equal(model.enc_hazy.layer1[1].conv2.weight, reference.layer1[1].conv2.weight)
    assert torch.equal(model.enc_hazy.bn1.running_mean, reference.bn1.running_mean)
    for name in ("layer2", "layer3", "layer4"):
        assert torch.equal(getattr(model.reid, name)[0].conv1.weight, getattr(reference, name)[0].conv1.weight)


def test_load_backbone_weights_ibn_net_layout(tmp_path):
    torch.manual_seed(2)
    reference = resnet50_ibn_a()
    path = tmp_path / "resnet50_ibn_a.pth"
    torch.save({f"module.{k}": v for k, v in reference.state_dict().items()}, path)
    model = RVSL("resnet50_ibn_a", num_classes=3)
    load_backbone_weights(model, safe_load(str(path), "MODEL.PRETRAIN_PATH"), str(path))
    assert torch.equal(model.enc_hazy.layer1[0].bn1.IN.weight, reference.layer1[0].bn1.IN.weight)
    assert torch.equal(model.reid.layer3[2].bn1.BN.running_var, reference.layer3[2].bn1.BN.running_var)
    assert torch.equal(model.reid.layer4[2].conv3.weight, reference.layer4[2].conv3.weight)


def test_load_backbone_weights_errors(tmp_path):
    model = RVSL("resnet18", num_classes=3)
    missing = tmp_path / "nope.pth"
    with pytest.raises(InputError, match="nope.pth"):
        safe_load(str(missing), "MODEL.PRETRAIN_PATH")
    text = tmp_path / "notes.txt"
    text.write_text("not a checkpoint")
    with pytest.raises(InputError, match="notes.txt"):
        safe_load(str(text), "MODEL.PRETRAIN_PATH")
    with pytest.raises(InputError, match="list.pth' does not hold a state dict"):
        load_backbone_weights(model, [1, 2, 3], "list.pth")
    with pytest.raises(InputError, match="no tensor of 'unrelated.pth' matches"):
        load_backbone_weights(model, {"head.weight": torch.zeros(2)}, "unrelated.pth")


def test_image_pool_behaviour_and_resume(tmp_path):
    torch.manual_seed(0)
    pool = ImagePool(3)
    first = torch.rand(3, 3, 4, 4)
    assert torch.equal(pool.query(first), first) and len(pool) == 3
    out = pool.query(torch.rand(8, 3, 4, 4))
    assert out.shape == (8, 3, 4, 4) and len(pool) == 3
    assert not out.requires_grad

    path = tmp_path / "pool.pth"
    torch.save(pool.state_dict(), path)
    restored = ImagePool(3)
    restored.load_state_dict(torch.load(path, weights_only=True))
    batch = torch.rand(16, 3, 4, 4)
    torch.manual_seed(5)
    expected = pool.query(batch)
    torch.manual_seed(5)
    assert torch.equal(restored.query(batch), expected)
    # Half the images, on average, come from the pool: some but not all differ from the input.
    changed = (expected != batch).flatten(1).any(dim=1)
    assert 0 < changed.sum() < 16

    disabled = ImagePool(0)
    fake = torch.rand(2, 3, 4, 4, requires_grad=True)
    assert torch.equal(disabled.query(fake), fake) and len(disabled) == 0


def test_discriminator_accepts_unit_range_images():
    disc = PatchDiscriminator(base_channels=8)
    scores = disc(torch.rand(2, 3, 32, 32))
    assert scores.shape == (2, 1, 1, 1) and torch.isfinite(scores).all()


def test_training_step_reaches_every_trainable_parameter(small_model):
    model = small_model.train()
    model.zero_grad(set_to_none=True)
    clear, hazy = torch.rand(4, 3, 32, 32), torch.rand(4, 3, 32, 32)
    f1_c, r1_c = model.encode(clear, "clear")
    f1_h, r1_h = model.encode(hazy, "hazy")
    loss = model.embed(r1_c).logits.sum() + model.embed(r1_h).logits.sum()
    loss = loss + model.render_hazy(f1_c, r1_c).mean() + model.render_clear(f1_h, r1_h).mean()
    loss.backward()
    for name, param in model.named_parameters():
        if param.requires_grad:
            assert param.grad is not None and torch.isfinite(param.grad).all(), name
        else:
            assert name == "reid.bnneck.bias"
