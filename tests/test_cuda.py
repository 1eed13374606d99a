"""The CUDA paths: training steps of each stage under bf16 and fp16, the memory-saving switches, evaluation.

Skipped without a GPU; run them with ``pytest -m cuda`` on a machine that has one.
"""

import numpy as np
import pytest
import torch

from rvsl import Predictor
from rvsl.config import get_cfg_defaults
from rvsl.engine.inference import build_evaluators
from rvsl.engine.trainer import Trainer
from rvsl.evaluation import inference_on_dataset
from rvsl.utils.misc import amp_dtype, to_device

from test_engine import make_cfg, params

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]
CUDA = torch.device("cuda")


def cuda_trainer(root, out, stage, *opts) -> Trainer:
    cfg = make_cfg(root, out, stage, "MODEL.DEVICE", "cuda", *opts)
    return Trainer(cfg, CUDA)


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
@pytest.mark.parametrize("stage", ["STAGE1", "STAGE2", "STAGE3"])
def test_training_steps_on_cuda(tiny_fvrid, tmp_path, stage, amp):
    torch.manual_seed(0)
    trainer = cuda_trainer(tiny_fvrid, tmp_path, stage, "SOLVER.AMP", amp)
    assert trainer.amp_dtype == {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]
    assert trainer.scalers["model"].is_enabled() == (amp == "fp16")
    assert trainer.optimizers["model"].defaults["fused"] and trainer.channels_last
    before = params(trainer.model)
    batches = (batch for epoch in range(10) for batch in trainer._batches(epoch))
    for _ in range(8):  # fp16: the scaler skips the first steps while it lowers its scale from 2**16
        values, disc_values = trainer.train_iteration([next(batches)])
        assert values and disc_values
        assert all(v.device.type == "cuda" and torch.isfinite(v) for v in {**values, **disc_values}.values())
    after = params(trainer.model)
    assert all(torch.isfinite(v).all() for v in after.values())
    assert sum(not torch.equal(before[k], after[k]) for k in before) > len(before) // 2


def test_auto_precision_picks_bf16_on_a_bf16_gpu():
    expected = torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16
    assert amp_dtype("auto", CUDA) == expected


def test_activation_checkpointing_gives_the_same_gradients(tiny_fvrid, tmp_path):
    """Recomputing the activations changes memory, not the gradients (fp32, same batch, same weights; the
    tolerance covers TF32 convolutions and cuDNN choosing other algorithms)."""
    grads = []
    for flag in ("none", "all"):
        torch.manual_seed(0)
        trainer = cuda_trainer(tiny_fvrid, tmp_path / flag, "STAGE1", "SOLVER.AMP", "off",
                               "MODEL.ACTIVATION_CHECKPOINT", flag)
        trainer.model.train()
        batch = to_device(next(trainer._batches(0)), CUDA, trainer.channels_last)
        sum(trainer.step(batch).losses.values()).backward()
        grads.append({n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for name, grad in grads[0].items():
        assert (grads[1][name] - grad).norm() <= 1e-2 * grad.norm() + 1e-6, name


def test_one_epoch_and_validation_on_cuda(tiny_fvrid, tmp_path):
    trainer = cuda_trainer(tiny_fvrid, tmp_path, "STAGE1", "SOLVER.AMP", "auto", "VAL.SYN_IDENTITIES", "2")
    losses, disc_losses = trainer.train_epoch(0)
    assert all(isinstance(v, float) for v in {**losses, **disc_losses}.values())
    results = trainer.validate()
    assert 0 <= results["syn_val"]["hazy"]["mAP"] <= 1 and 0 <= results["test_labels"]["hazy"]["mAP"] <= 1


def test_cuda_evaluation_matches_cpu(tiny_fvrid, tmp_path):
    """The same weights give the same metrics on CUDA (fp32) as on the CPU."""
    trainer = cuda_trainer(tiny_fvrid, tmp_path, "STAGE1", "SOLVER.AMP", "off")
    loader, num_query = trainer.test
    on_gpu = inference_on_dataset(trainer.model, loader, build_evaluators(trainer.cfg, num_query), CUDA)
    model = trainer.model.to("cpu", memory_format=torch.contiguous_format)
    on_cpu = inference_on_dataset(model, loader, build_evaluators(trainer.cfg, num_query), "cpu")
    for branch in ("clear", "hazy", "fused"):
        for metric, value in on_cpu[branch].items():
            assert on_gpu[branch][metric] == pytest.approx(value, abs=1e-6), (branch, metric)


@pytest.mark.parametrize("amp", ["auto", "fp16"])
def test_predictor_on_cuda_uses_autocast_channels_last_and_workers(tiny_checkpoint, demo_images, amp):
    """The fast inference path: the run's autocast, a channels-last model, pinned loader workers; float32
    features close to the CPU's float32 ones (cosine similarity), dehazed images likewise."""
    cfg = get_cfg_defaults()
    cfg.merge_from_list(["SOLVER.AMP", amp, "DATALOADER.NUM_WORKERS", "2"])
    gpu = Predictor(str(tiny_checkpoint), device="cuda", batch_size=3, cfg=cfg)
    assert gpu.amp_dtype == amp_dtype(amp, CUDA) and gpu.amp_dtype is not None and gpu.channels_last
    cpu = Predictor(str(tiny_checkpoint), device="cpu", batch_size=3)
    on_gpu, on_cpu = gpu.features(demo_images), cpu.features(demo_images)
    for name in ("clear", "hazy", "fused"):
        a, b = on_gpu[name], on_cpu[name]
        assert a.dtype == np.float32 and a.shape == b.shape
        cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        assert cosine.min() > 0.99, name
    paths = sorted(str(p) for p in demo_images.iterdir())
    dehazed = np.concatenate(list(gpu.dehazed_batches(paths)))
    assert dehazed.dtype == np.float32 and np.abs(dehazed - cpu.dehaze(paths)).max() < 0.05
