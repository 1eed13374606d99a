"""Checkpoints of the reference code: names and shapes of its stage models, mapped both ways, used end to end."""

import json

import pytest
import torch
import torch.nn.functional as F

from helpers import ROOT, run_cli, tiny_opts
from rvsl.config import config_to_dict, load_config
from rvsl.checkpoint import load_inference_model, load_reference_weights
from rvsl.modeling import build_model
from rvsl.modeling.reference import from_reference, is_reference_state, to_reference
from rvsl.modeling.resnet_ibn_a import resnet50_ibn_a
from rvsl.utils.errors import InputError

# The reference builds every stage model on ResNet-50-IBN-a, and its layer4 keeps stride 2.
REF_OPTS = ["MODEL.NAME", "resnet50_ibn_a", "MODEL.LAST_STRIDE", "2", "MODEL.DEVICE", "cpu",
            "INPUT.SIZE_TEST", "[32, 32]"]


def _bn(prefix: str, channels: int):
    """Names and shapes of a BatchNorm's tensors."""
    shapes = {f"{prefix}.{n}": (channels,) for n in ("weight", "bias", "running_mean", "running_var")}
    shapes[f"{prefix}.num_batches_tracked"] = ()
    return shapes


def reference_shapes(num_classes: int, classifier: str):
    """Every key of a reference ``Stage*_Model`` state dict and its shape, as its ``RVSL/models/`` defines them."""
    shapes = {}
    for key, value in resnet50_ibn_a().state_dict().items():  # same module names as the reference ResNet_IBN
        part = key.split(".")[0]
        if part in ("conv1", "bn1", "layer1"):
            shapes[f"Ec.{key}"] = shapes[f"Ef.{key}"] = tuple(value.shape)
        elif part in ("layer2", "layer3", "layer4"):
            shapes[f"Dreid.{key}"] = tuple(value.shape)
    shapes.update(_bn("bottleneck", 2048))
    shapes[f"{classifier}.weight"] = (num_classes, 2048)
    for gen in ("Dc", "Df"):  # Decoder_Generator(256, 64): DC1 on R1, DC2 on cat[F1, up(x)], DC3, OutConv
        for block, in_ch in (("DC1", 256), ("DC2", 128), ("DC3", 64)):
            for index, conv_in in ((0, in_ch), (3, 64)):
                shapes[f"{gen}.{block}.double_conv.{index}.weight"] = (64, conv_in, 3, 3)
                shapes[f"{gen}.{block}.double_conv.{index}.bias"] = (64,)
                shapes.update(_bn(f"{gen}.{block}.double_conv.{index + 1}", 64))
        shapes[f"{gen}.OutConv.weight"] = (3, 64, 1, 1)
        shapes[f"{gen}.OutConv.bias"] = (3,)
    return shapes


def reference_state(num_classes: int = 5, classifier: str = "classifier", seed: int = 0):
    """Random tensors under the reference names (positive running variances, BN scales near 1)."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in reference_shapes(num_classes, classifier).items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(7)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=gen) + 0.5
        elif len(shape) == 1 and key.endswith("weight"):
            state[key] = 1 + 0.1 * torch.randn(shape, generator=gen)
        else:
            state[key] = 0.05 * torch.randn(shape, generator=gen)
    return state


@pytest.fixture(scope="module")
def ref_cfg():
    return load_config(None, REF_OPTS)


def test_mapping_covers_every_key_both_ways(ref_cfg):
    state = reference_state()
    assert is_reference_state(state)
    ours, classifier = from_reference(state)
    assert classifier == "classifier"
    own = build_model(ref_cfg, 5).state_dict()
    assert set(ours) == set(own)
    assert all(tuple(ours[k].shape) == tuple(own[k].shape) for k in own)
    back = to_reference(ours, classifier)
    assert set(back) == set(state) and all(torch.equal(back[k], state[k]) for k in state)


def test_stage2_classifier_name_and_dataparallel_prefix(ref_cfg, tmp_path):
    state = {f"module.{k}": v for k, v in reference_state(7, "syn_classifier").items()}
    torch.save(state, tmp_path / "stage2.pth")
    model, model_cfg, info = load_inference_model(str(tmp_path / "stage2.pth"), "TEST.WEIGHT", ref_cfg)
    assert info["format"] == "reference" and info["num_classes"] == 7
    assert model_cfg.MODEL.GENERATOR == "reference" and ref_cfg.MODEL.GENERATOR == "rvsl"  # the rest is ref_cfg
    assert config_to_dict(model_cfg)["MODEL"] == {**config_to_dict(ref_cfg)["MODEL"], "GENERATOR": "reference"}
    assert torch.equal(model.reid.classifier.weight, state["module.syn_classifier.weight"])


def test_pretrain_start_keeps_a_classifier_of_another_size():
    ref_cfg = load_config(None, [*REF_OPTS, "MODEL.GENERATOR", "reference"])
    state = reference_state(num_classes=5)
    model = build_model(ref_cfg, 9)
    fresh = model.reid.classifier.weight.clone()
    load_reference_weights(model, state, "MODEL.PRETRAIN_PATH: ref.pth")
    assert torch.equal(model.reid.classifier.weight, fresh)
    assert torch.equal(model.enc_hazy.layer1[0].conv1.weight, state["Ef.layer1.0.conv1.weight"])
    del state["Dc.OutConv.bias"]
    with pytest.raises(InputError, match=r"Dc\.OutConv\.bias"):
        load_reference_weights(build_model(ref_cfg, 9), state, "MODEL.PRETRAIN_PATH: ref.pth")


# The reference recipe as it ran, with no model or pixel override (test size only).
AS_RAN = ["INPUT.SIZE_TEST", "[32, 32]"]
IMAGENET = (torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225]))
# (config file, options, the normalisation the networks read): ours with ImageNet statistics, and the
# reference's configs/FVRID_reference.yml, whose networks read RGB in [0, 1] as its loader gave them.
SETTINGS = {"imagenet": (None, REF_OPTS, IMAGENET),
            "as_ran": (str(ROOT / "configs" / "FVRID_reference.yml"), AS_RAN, (torch.zeros(3), torch.ones(3)))}


def _reference_encoder(state, enc: str):
    """The reference's Encoder + Dreid (an IBN-a ResNet-50 under its names ``enc.*`` and ``Dreid.*``), eval mode."""
    net = resnet50_ibn_a().eval()
    parts = {k[len(enc) + 1:]: v for k, v in state.items() if k.startswith(enc + ".")}
    parts.update({k[len("Dreid."):]: v for k, v in state.items() if k.startswith("Dreid.")})
    missing, _ = net.load_state_dict(parts, strict=False)
    assert all(k.startswith("fc.") for k in missing)
    return net


def _batch_norm(x, state, prefix: str):
    return F.batch_norm(x, state[f"{prefix}.running_mean"], state[f"{prefix}.running_var"], state[f"{prefix}.weight"],
                        state[f"{prefix}.bias"], False, 0.0, 1e-5)


def _reference_generator(state, gen: str, f1, r1, out_size):
    """The reference's Decoder_Generator from its published layer names: DC1 on R1, bilinear x2 with aligned
    corners (zero-padded to the skip's size), DC2 on cat[F1, x], x2 again (padded to the output size), DC3,
    OutConv, and no activation."""
    def double_conv(x, block):
        for index in (0, 3):
            name = f"{gen}.{block}.double_conv"
            x = F.conv2d(x, state[f"{name}.{index}.weight"], state[f"{name}.{index}.bias"], padding=1)
            x = F.relu(_batch_norm(x, state, f"{name}.{index + 1}"))
        return x

    def up(x, size):
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        dy, dx = size[0] - x.shape[-2], size[1] - x.shape[-1]
        return F.pad(x, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])

    x = up(double_conv(r1, "DC1"), f1.shape[-2:])
    x = up(double_conv(torch.cat([f1, x], 1), "DC2"), out_size)
    return F.conv2d(double_conv(x, "DC3"), state[f"{gen}.OutConv.weight"], state[f"{gen}.OutConv.bias"])


@pytest.mark.parametrize("setting", sorted(SETTINGS))
def test_features_equal_the_reference_computation(setting, tmp_path):
    path, opts, (mean, std) = SETTINGS[setting]
    state = reference_state()
    torch.save(state, tmp_path / "ref.pth")
    model, _, _ = load_inference_model(str(tmp_path / "ref.pth"), "TEST.WEIGHT", load_config(path, opts))
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    x = (images - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
    for branch, enc in (("clear", "Ec"), ("hazy", "Ef")):
        net = _reference_encoder(state, enc)  # the reference's Encoder + Dreid + gap + bottleneck, by hand
        with torch.no_grad():
            r1 = net.layer1(net.maxpool(net.relu(net.bn1(net.conv1(x)))))
            pooled = net.layer4(net.layer3(net.layer2(r1))).mean(dim=(2, 3))
            expected = _batch_norm(pooled, state, "bottleneck")
            got = model(images, branch)
        assert torch.allclose(got, expected, rtol=1e-5, atol=1e-5 * expected.abs().max().item())


@pytest.mark.parametrize("setting", sorted(SETTINGS))
@pytest.mark.parametrize("size", [(32, 32), (34, 42)])
def test_dehazed_and_rehazed_images_equal_the_reference_computation(setting, size, tmp_path):
    """G_C and G_H of a reference file render what the reference's generators render (no activation; clamped to
    [0, 1] at test time). OutConv is scaled so that the raw output lies mostly inside [0, 1], where a sigmoid
    would show (black comes out at 0.5)."""
    path, opts, (mean, std) = SETTINGS[setting]
    state = reference_state()
    for gen in ("Dc", "Df"):
        state[f"{gen}.OutConv.weight"] = state[f"{gen}.OutConv.weight"] * 2
        state[f"{gen}.OutConv.bias"] = torch.full((3,), 0.5)
    torch.save(state, tmp_path / "ref.pth")
    model, model_cfg, _ = load_inference_model(str(tmp_path / "ref.pth"), "TEST.WEIGHT", load_config(path, opts))
    images = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(2))
    x = (images - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
    for gen, enc, render in (("Dc", "Ef", model.render_clear), ("Df", "Ec", model.render_hazy)):
        net = _reference_encoder(state, enc)
        with torch.no_grad():
            f1 = net.relu(net.bn1(net.conv1(x)))
            raw = _reference_generator(state, gen, f1, net.layer1(net.maxpool(f1)), size)
            got = render(*model.encode(images, "hazy" if enc == "Ef" else "clear"), out_size=size)
        inside = ((raw > 0) & (raw < 1)).float().mean().item()
        assert inside > 0.9, inside  # the comparison is not about clamped pixels
        assert got.shape == raw.shape and torch.allclose(got, raw.clamp(0, 1), atol=1e-5)
    assert model_cfg.MODEL.GENERATOR == "reference"


def test_generator_reads_the_skip_channels_in_reference_order(ref_cfg, tmp_path):
    state = reference_state()
    torch.save(state, tmp_path / "ref.pth")
    model, _, _ = load_inference_model(str(tmp_path / "ref.pth"), "TEST.WEIGHT", ref_cfg)
    f1, up = torch.randn(1, 64, 8, 8), torch.randn(1, 64, 8, 8)
    expected = F.conv2d(torch.cat([f1, up], 1), state["Dc.DC2.double_conv.0.weight"],
                        state["Dc.DC2.double_conv.0.bias"], padding=1)
    with torch.no_grad():
        got = model.gen_clear.block2[0](torch.cat([up, f1], 1))
    assert torch.allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize("change, named", [("extra", "Ec.extra_layer.weight"), ("missing", "Dreid.layer4.2.bn3.weight"),
                                           ("shape", "bottleneck.weight")])
def test_leftover_missing_or_misshapen_key_is_named(ref_cfg, tmp_path, change, named):
    state = reference_state()
    if change == "extra":
        state[named] = torch.zeros(3)
    elif change == "missing":
        del state[named]
    else:
        state[named] = torch.ones(10)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(InputError, match=named.replace(".", r"\.")):
        load_inference_model(str(tmp_path / "bad.pth"), "TEST.WEIGHT", ref_cfg)


def test_reference_file_evaluates_end_to_end_through_inference(tiny_fvrid, tmp_path):
    torch.save(reference_state(), tmp_path / "ref.pth")
    result = run_cli(["RVSL/inference.py", "-t", "DATASETS.DATA_PATH", str(tiny_fvrid), "TEST.DATA", "REAL_FOGGY",
                      "TEST.WEIGHT", str(tmp_path / "ref.pth"), "OUTPUT_DIR", str(tmp_path / "out"),
                      "DATALOADER.NUM_WORKERS", "0", *REF_OPTS])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "reference format" in result.stderr
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert all(0.0 <= metrics[p]["mAP"] <= 1.0 for p in ("clear", "hazy", "fused"))


def test_trainer_starts_from_a_reference_file(tiny_fvrid, tmp_path):
    """MODEL.PRETRAIN_PATH accepts a reference-format file: every mapped tensor lands in the trainer's model."""
    from rvsl.engine.trainer import Trainer

    state = reference_state(num_classes=5)
    torch.save(state, tmp_path / "ref.pth")
    opts = [*tiny_opts(), *REF_OPTS, "DATASETS.DATA_PATH", str(tiny_fvrid), "OUTPUT_DIR", str(tmp_path / "out"),
            "MODEL.PRETRAIN_PATH", str(tmp_path / "ref.pth")]
    with pytest.raises(InputError, match="MODEL.GENERATOR reference"):  # its generators behind a sigmoid
        Trainer(load_config(None, opts), torch.device("cpu"))
    trainer = Trainer(load_config(None, [*opts, "MODEL.GENERATOR", "reference"]), torch.device("cpu"))
    assert torch.equal(trainer.model.enc_hazy.layer1[0].conv1.weight, state["Ef.layer1.0.conv1.weight"])
    assert torch.equal(trainer.model.reid.layer4[0].conv1.weight, state["Dreid.layer4.0.conv1.weight"])
    assert trainer.model.gen_clear.style == trainer.model.gen_hazy.style == "reference"
