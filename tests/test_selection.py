"""Label-free checkpoint choice and the AdaBN baseline: proxies and BatchNorm re-estimation, checked by hand."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from helpers import ROOT, TINY_CONFIG
from rvsl.engine.adabn import adapt_batchnorm
from rvsl.engine.hooks import metric_value
from rvsl.evaluation import NonFiniteFeatures
from rvsl.evaluation.proxies import knn_overlap, real_proxies
from rvsl.modeling import RVSL


def test_knn_overlap_matches_a_loop():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(12, 5, generator=gen), torch.randn(12, 5, generator=gen)
    k = 3
    expected = []
    for i in range(12):
        def top(x):
            sims = [(float(F.cosine_similarity(x[i], x[j], dim=0)), j) for j in range(12) if j != i]
            return {j for _, j in sorted(sims, reverse=True)[:k]}
        expected.append(len(top(a) & top(b)) / k)
    assert knn_overlap(a, b, k) == pytest.approx(np.mean(expected), abs=1e-6)
    assert knn_overlap(a, a, k) == 1.0


def test_real_proxies_against_a_hand_computation():
    torch.manual_seed(0)
    model = RVSL("resnet18", num_classes=3).eval()
    images = torch.rand(6, 3, 32, 32)
    loader = [{"img": images[:4]}, {"img": images[4:]}]
    proxies = real_proxies(model, loader, "hazy", torch.device("cpu"), k=2)
    with torch.no_grad():
        f1, r1 = model.encode(images, "hazy")
        dehazed = model.render_clear(f1, r1)
        f1_c, r1_c = model.encode(dehazed, "clear")
        cycled = model.render_hazy(f1_c, r1_c)
        own, other = model.embed(r1).bn_feat, model.embed(r1_c).bn_feat
    mse = ((cycled - images) ** 2).flatten(1).mean(1).numpy()
    assert proxies["cycle_psnr"] == pytest.approx(float(np.mean(10 * np.log10(1 / mse))), rel=1e-5)
    cos = [float(own[i] @ other[i] / (own[i].norm() * other[i].norm())) for i in range(6)]
    assert proxies["agreement"] == pytest.approx(float(np.mean(cos)), abs=1e-5)
    assert proxies["knn_overlap"] == pytest.approx(knn_overlap(own, other, 2))
    assert not model.training


def test_real_proxies_name_a_broken_model():
    """A model with NaN weights gives NaN features: the proxies refuse them instead of scoring NaN."""
    model = RVSL("resnet18", num_classes=3).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.fill_(float("nan"))
    with pytest.raises(NonFiniteFeatures, match="6 of 6 images have real hazy features"):
        real_proxies(model, [{"img": torch.rand(6, 3, 32, 32)}], "hazy", torch.device("cpu"), k=2)


def test_adabn_reestimates_only_the_branch_statistics():
    torch.manual_seed(0)
    model = RVSL("resnet18", num_classes=3).eval()
    weights = {k: v.clone() for k, v in model.named_parameters()}
    clear_stats = model.enc_clear.bn1.running_mean.clone()
    images = torch.rand(10, 3, 32, 32) * 0.5 + 0.4
    seen = adapt_batchnorm(model, [{"img": images[:5]}, {"img": images[5:]}], "hazy", torch.device("cpu"))
    assert seen == 10
    with torch.no_grad():  # the first BN: the average over the two batches of conv1's per-channel statistics
        conv = model.enc_hazy.conv1((images - model.pixel_mean) / model.pixel_std)
    halves = conv[:5], conv[5:]
    mean = sum(h.mean(dim=(0, 2, 3)) for h in halves) / 2
    var = sum(h.var(dim=(0, 2, 3), unbiased=True) for h in halves) / 2
    assert torch.allclose(model.enc_hazy.bn1.running_mean, mean, atol=1e-5)
    assert torch.allclose(model.enc_hazy.bn1.running_var, var, rtol=1e-4)
    assert torch.allclose(mean, conv.mean(dim=(0, 2, 3)), atol=1e-5)  # equal batches: the mean over all images
    assert torch.equal(model.enc_clear.bn1.running_mean, clear_stats)
    assert all(torch.equal(v, weights[k]) for k, v in model.named_parameters())
    assert model.enc_hazy.bn1.momentum == 0.1 and not model.training


def test_metric_value_reads_nested_names():
    metrics = {"syn_val": {"hazy": {"mAP": 0.25}}, "real_proxy": {"agreement": 0.5}}
    assert metric_value(metrics, "syn_val/hazy/mAP") == 0.25
    assert metric_value(metrics, "real_proxy/agreement") == 0.5
    assert metric_value(metrics, "test_labels/hazy/mAP") is None


def test_adabn_command_writes_a_checkpoint_with_new_statistics_only(tiny_fvrid, tmp_path):
    from helpers import run_cli
    from model_helpers import save_tiny_checkpoint
    from rvsl.utils.io import safe_load

    weight = save_tiny_checkpoint(tmp_path / "tiny.pth")
    out = tmp_path / "adabn"
    result = run_cli(["RVSL/adabn.py", "DATASETS.DATA_PATH", str(tiny_fvrid), "TEST.WEIGHT", str(weight),
                      "OUTPUT_DIR", str(out), "DATALOADER.NUM_WORKERS", "0", "MODEL.DEVICE", "cpu"])
    assert result.returncode == 0, result.stderr[-3000:]
    before, after = safe_load(str(weight), "w"), safe_load(str(out / "adabn.pth"), "w")
    assert after["adabn"]["images"] == 24 and after["num_classes"] == before["num_classes"]
    changed = {k for k, v in after["model"].items() if not torch.equal(v, before["model"][k])}
    assert "enc_hazy.bn1.running_mean" in changed and "reid.bnneck.running_var" in changed
    assert all(k.startswith(("enc_hazy.", "reid.")) and "running_" in k or k.endswith("num_batches_tracked")
               for k in changed)
    bad = run_cli(["RVSL/adabn.py", "TEST.WEIGHT", str(tmp_path / "missing.pth"), "OUTPUT_DIR", str(tmp_path / "o")])
    assert bad.returncode == 2 and "TEST.WEIGHT" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.parametrize("config", [None, "configs/FVRID.yml", "configs/FVRID_reference.yml", "configs/demo.yml",
                                    "configs/adaptation.yml"])
@pytest.mark.parametrize("stage", ["STAGE1", "STAGE2", "STAGE3"])
def test_default_checkpoint_choice_reads_no_test_label(config, stage):
    """Two epochs: the labelled test set prefers the first, everything label-free the second. The default
    choice of every shipped config must take the second; train.sh and the Makefile must not override it."""
    from rvsl.config import load_config
    from rvsl.engine.hooks import BestMetricHook, EpochRecord

    cfg = load_config(str(ROOT / config) if config else None, [], stage=stage)
    hook = BestMetricHook(cfg.SOLVER.BEST_METRIC)
    reid = lambda v: {b: {"mAP": v, "rank1": v, "mINP": v} for b in ("clear", "hazy", "fused")}  # noqa: E731
    proxies = lambda v: {"cycle_psnr": v, "agreement": v, "knn_overlap": v}  # noqa: E731
    for epoch, (test, free) in enumerate([(0.9, 0.1), (0.1, 0.2)], start=1):
        record = EpochRecord(epoch, metrics={"test_labels": reid(test), "syn_val": reid(free),
                                             "real_proxy": proxies(free)})
        hook.after_epoch(None, record)
    assert hook.best_epoch == 2, cfg.SOLVER.BEST_METRIC
    for script in ("train.sh", "Makefile", "test.sh"):
        assert "test_labels" not in (ROOT / script).read_text()


def test_choosing_on_test_labels_is_named_and_needs_the_test_set(tiny_fvrid, tmp_path, caplog):
    import logging
    import shutil

    from rvsl.config import load_config
    from rvsl.engine.trainer import Trainer
    from rvsl.utils.errors import InputError

    opts = ["DATASETS.DATA_PATH", str(tiny_fvrid), "OUTPUT_DIR", str(tmp_path / "o"),
            "SOLVER.BEST_METRIC", "test_labels/hazy/mAP"]
    with caplog.at_level(logging.WARNING):
        Trainer(load_config(str(TINY_CONFIG), opts, stage="STAGE3"), torch.device("cpu"))
    assert "chosen on test labels" in caplog.text
    data = tmp_path / "data"
    shutil.copytree(tiny_fvrid, data)
    shutil.rmtree(data / "FVRID_real" / "query_foggy")
    with pytest.raises(InputError, match="needs the REAL_FOGGY test set, which is absent"):
        Trainer(load_config(str(TINY_CONFIG), opts + ["DATASETS.DATA_PATH", str(data)], stage="STAGE3"),
                torch.device("cpu"))
