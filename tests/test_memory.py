"""MODEL.ACTIVATION_CHECKPOINT: the auto choice from the free GPU memory (mocked), and the selective policy."""

import copy
import logging
from pathlib import Path

import pytest
import torch

from rvsl.config import load_config
from rvsl.engine.memory import choose_activation_checkpoint, estimated_peak_gb
from rvsl.modeling import RVSL

CUDA = torch.device("cuda")  # only named: the free memory is given or mocked, nothing runs on a GPU
GB = 10**9
PUBLISHED = str(Path(__file__).resolve().parents[1] / "configs" / "FVRID.yml")


def published(stage: str, *opts):
    return load_config(PUBLISHED, list(opts), stage=stage)


@pytest.mark.parametrize("stage, free_gb, expected", [
    ("STAGE1", 79.0, "none"), ("STAGE1", 23.5, "generators"), ("STAGE1", 15.5, "all"),
    ("STAGE3", 79.0, "none"), ("STAGE3", 23.5, "all"), ("STAGE2", 30.0, "generators"),
])
def test_auto_picks_the_fastest_policy_that_fits(stage, free_gb, expected, caplog):
    cfg = published(stage)
    assert cfg.MODEL.ACTIVATION_CHECKPOINT == "auto"
    with caplog.at_level(logging.INFO, logger="rvsl"):
        assert choose_activation_checkpoint(cfg, CUDA, (int(free_gb * GB), 80 * GB)) == expected
    assert f"{free_gb:.1f} of 80.0 GB free" in caplog.text and f"chose {expected}" in caplog.text


def test_auto_reads_the_free_memory_once(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: calls.append(device) or (14 * GB, 16 * GB))
    assert choose_activation_checkpoint(published("STAGE3"), CUDA) == "all"
    assert calls == [CUDA]


def test_auto_is_none_on_the_cpu_and_an_explicit_policy_stays(monkeypatch):
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: pytest.fail("no GPU memory to read on the CPU"))
    assert choose_activation_checkpoint(published("STAGE1"), torch.device("cpu")) == "none"
    explicit = published("STAGE1", "MODEL.ACTIVATION_CHECKPOINT", "generators")
    assert choose_activation_checkpoint(explicit, CUDA, (1 * GB, 16 * GB)) == "generators"


def test_too_little_memory_warns_and_takes_all(caplog):
    with caplog.at_level(logging.WARNING, logger="rvsl"):
        assert choose_activation_checkpoint(published("STAGE3"), CUDA, (8 * GB, 8 * GB)) == "all"
    assert "may not fit" in caplog.text


def test_estimate_scales_with_batch_and_resolution():
    full = estimated_peak_gb(published("STAGE1"), "none")
    half_batch = estimated_peak_gb(published("STAGE1", "DATALOADER.NUM_IDENTITIES", "3"), "none")
    half_side = estimated_peak_gb(published("STAGE1", "INPUT.SIZE_TRAIN", "[192, 192]"), "none")
    assert half_batch < full and half_side < half_batch
    assert full - 1.0 == pytest.approx(2 * (half_batch - 1.0)) == pytest.approx(4 * (half_side - 1.0))
    # a policy without its own measurement is bounded by the faster policy it recomputes a subset of
    assert estimated_peak_gb(published("STAGE1"), "fullres") == full
    assert [estimated_peak_gb(published("STAGE3"), p) for p in ("none", "generators", "all")] == sorted(
        [estimated_peak_gb(published("STAGE3"), p) for p in ("none", "generators", "all")], reverse=True)


def test_fullres_policy_gives_the_same_loss_and_gradients_as_none(monkeypatch):
    """Only the generators' full-resolution block is recomputed, and the loss and gradients are those of no
    checkpointing (fp32 CPU; each policy starts from the same weights and BatchNorm statistics)."""
    torch.manual_seed(0)
    base = RVSL("resnet18", num_classes=5, gen_channels=8).train()
    clear, hazy = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    recomputed = []
    import rvsl.modeling.generator as generator
    checkpoint = generator.checkpoint
    monkeypatch.setattr(generator, "checkpoint", lambda block, x, **kw: recomputed.append(block) or
                        checkpoint(block, x, **kw))
    results = {}
    for policy in ("none", "fullres"):
        model = copy.deepcopy(base)
        model.set_activation_checkpoint(policy)
        recomputed.clear()
        f1_c, r1_c = model.encode(clear, "clear")
        f1_h, r1_h = model.encode(hazy, "hazy")
        loss = (model.render_hazy(f1_c, r1_c) - hazy).abs().mean() + model.embed(r1_h).logits.logsumexp(1).mean()
        loss = loss + (model.render_clear(f1_h, r1_h) - clear).pow(2).mean()
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        results[policy] = (loss.detach(), grads)
        assert recomputed == ([] if policy == "none" else [model.gen_hazy.block3, model.gen_clear.block3])
    torch.testing.assert_close(results["fullres"][0], results["none"][0], rtol=0, atol=0)
    assert results["fullres"][1].keys() == results["none"][1].keys()
    for name, grad in results["none"][1].items():
        torch.testing.assert_close(results["fullres"][1][name], grad, rtol=1e-6, atol=1e-8, msg=name)
