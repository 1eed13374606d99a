"""The engine: one step of each stage, the reference-defect fixes, checkpoints, the non-finite guard."""

import logging
import os
import pickle
from pathlib import Path

import pytest
import torch

from helpers import TINY_CONFIG
from rvsl.config import load_config
from rvsl.checkpoint import read_weights, write_checkpoint
from rvsl.engine.guard import TrainingStopped
from rvsl.engine.hooks import EpochRecord
from rvsl.engine.solver import build_lr_schedulers, build_optimizers, step_schedulers
from rvsl.engine.stages import SupervisedStep, UnsupervisedStep
from rvsl.engine.guard import GRAD_SCALE_START
from rvsl.engine.trainer import Trainer
from rvsl.losses import dcp_loss
from rvsl.utils.errors import InputError
from rvsl.utils.io import safe_load
from rvsl.utils.misc import to_device


def make_cfg(root: Path, out: Path, stage: str = "STAGE1", *opts):
    return load_config(str(TINY_CONFIG), ["DATASETS.DATA_PATH", str(root), "OUTPUT_DIR", str(out), "SOLVER.MAX_EPOCHS",
                                          "1", "SOLVER.WARMUP_LENGTH", "1", "SOLVER.AMP", "off", *opts], stage=stage)


def params(module: torch.nn.Module):
    return {name: p.detach().clone() for name, p in module.named_parameters()}


@pytest.mark.parametrize("stage", ["STAGE1", "STAGE2", "STAGE3"])
def test_one_iteration_of_each_stage_changes_the_weights(tiny_fvrid, tmp_path, stage):
    torch.manual_seed(0)
    trainer = Trainer(make_cfg(tiny_fvrid, tmp_path, stage), torch.device("cpu"))
    before, disc_before = params(trainer.model), params(trainer.discriminators)
    batch = next(trainer._batches(0))
    values, disc_values = trainer.train_iteration([batch])
    expected = {"STAGE1": ({"reid_clear", "reid_hazy", "trans_clear", "trans_hazy", "ec", "adv_clear", "adv_hazy"},
                           {"D_clear", "D_hazy"}),
                "STAGE2": ({"aux_reid_clear", "aux_reid_hazy", "aux_trans_clear", "aux_trans_hazy", "aux_ec",
                            "real_ec", "real_prior", "real_cycle", "real_adv_hazy"}, {"D_hazy"}),
                "STAGE3": ({"aux_reid_clear", "aux_reid_hazy", "aux_trans_clear", "aux_trans_hazy", "aux_ec",
                            "real_ec", "real_prior", "real_cycle", "real_adv_clear"}, {"D_clear"})}[stage]
    assert (set(values), set(disc_values)) == expected
    assert all(torch.isfinite(v) and v.dim() == 0 for v in {**values, **disc_values}.values())
    after = params(trainer.model)
    for prefix in ("enc_clear", "enc_hazy", "reid.layer4", "gen_clear", "gen_hazy"):
        assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith(prefix)), prefix
    assert any(not torch.equal(disc_before[k], v) for k, v in params(trainer.discriminators).items())


def test_real_batch_carries_no_identity(tiny_fvrid, tmp_path):
    """Defect 1: stage 2/3 real batches hold images only, and the step needs nothing else."""
    trainer = Trainer(make_cfg(tiny_fvrid, tmp_path, "STAGE3"), torch.device("cpu"))
    batch = next(trainer._batches(0))
    assert set(batch["real"]) == {"img"} and batch["real"]["img"].dtype == torch.uint8
    batch = to_device(batch, torch.device("cpu"))
    assert isinstance(trainer.step, UnsupervisedStep)
    trainer.step(batch)  # would raise KeyError if it looked for labels


@pytest.mark.parametrize("stage, domain, real_domain", [("STAGE2", "hazy", "clear"), ("STAGE3", "clear", "hazy")])
def test_adversarial_term_judges_what_the_discriminator_learns(tiny_fvrid, tmp_path, stage, domain, real_domain):
    """Defect 3: the generator fools the discriminator on exactly the image kind that it trains on."""
    trainer = Trainer(make_cfg(tiny_fvrid, tmp_path, stage), torch.device("cpu"))
    trainer.model.eval()  # deterministic BN so the image can be recomputed
    batch = to_device(next(trainer._batches(0)), torch.device("cpu"))
    [(judged_domain, real, generated)] = trainer.step(batch).adversarial
    assert judged_domain == domain
    with torch.no_grad():
        f1, r1 = trainer.model.encode(batch["real"]["img"], real_domain)
        translated = trainer.step.render(f1, r1, domain)
    assert torch.allclose(generated, translated)
    assert torch.equal(real, batch["syn"][domain])


def test_stage1_judges_both_rendered_kinds(tiny_fvrid, tmp_path):
    trainer = Trainer(make_cfg(tiny_fvrid, tmp_path, "STAGE1"), torch.device("cpu"))
    batch = to_device(next(trainer._batches(0)), torch.device("cpu"))
    assert isinstance(trainer.step, SupervisedStep)
    result = trainer.step(batch)
    assert [(d, torch.equal(real, batch[d])) for d, real, _ in result.adversarial] == [("clear", True), ("hazy", True)]
    # the adversarial weight applies to the mean of the two generator terms (the reference's 0.5 * (Lc + Lh) / 2)
    with torch.no_grad():
        terms = [trainer.step.fool(d, g, r)[0] for d, r, g in result.adversarial]
    expected = trainer.cfg.LOSS.SYN_ADV * (terms[0] + terms[1]) / 2
    assert torch.allclose(result.losses["adv_clear"] + result.losses["adv_hazy"], expected)


def test_stage3_prior_lowers_the_dark_channel_of_the_dehazed_image(tiny_fvrid, tmp_path):
    """Defect 2: descending the stage-3 prior makes the dehazed image's dark channel smaller."""
    trainer = Trainer(make_cfg(tiny_fvrid, tmp_path, "STAGE3"), torch.device("cpu"))
    hazy = torch.rand(2, 3, 32, 32) * 0.5 + 0.5
    dehazed = (torch.rand(2, 3, 32, 32) * 0.5 + 0.4).requires_grad_(True)
    trainer.step.prior(dehazed, hazy).backward()
    stepped = (dehazed - 0.5 * dehazed.grad / dehazed.grad.abs().max()).detach()
    assert dcp_loss(stepped, 35) < dcp_loss(dehazed.detach(), 35)


def test_nonfinite_losses_are_skipped_then_stop_the_run(tiny_fvrid, tmp_path, caplog):
    trainer = Trainer(make_cfg(tiny_fvrid, tmp_path, "STAGE1", "SOLVER.MAX_NONFINITE", "2"), torch.device("cpu"))
    batch = [to_device(next(trainer._batches(0)), torch.device("cpu"))]  # float images, which can hold a NaN
    batch[0]["clear"][:] = float("nan")
    before = params(trainer.model)
    stats = {k: v.clone() for k, v in trainer.model.named_buffers() if "running_" in k or "num_batches" in k}
    with caplog.at_level(logging.WARNING):
        assert trainer.train_iteration(batch, "it 1") == ({}, {})
    assert "non-finite model loss" in caplog.text and "reid_clear" in caplog.text
    assert all(torch.equal(before[k], v) for k, v in params(trainer.model).items())
    # the skipped update's forward pass left no trace in the BatchNorm statistics (NaN from the NaN images)
    buffers = dict(trainer.model.named_buffers())
    assert all(torch.equal(buffers[k], v) for k, v in stats.items())
    assert trainer.schedulers["warmup"].last_epoch == 0
    with pytest.raises(TrainingStopped, match="2 consecutive non-finite model losses"):
        trainer.train_iteration(batch, "it 2")
    assert trainer.guard.total == {"model": 2, "disc": 0}


def test_nonfinite_discriminator_alone_stops_the_run(tiny_fvrid, tmp_path, monkeypatch):
    """A NaN from the discriminators only: the model keeps training, the discriminators never update, the run stops."""
    trainer = Trainer(make_cfg(tiny_fvrid, tmp_path, "STAGE1", "SOLVER.MAX_NONFINITE", "3"), torch.device("cpu"))
    monkeypatch.setattr("rvsl.engine.distributed.discriminator_loss",
                        lambda disc, real, fake, batched=False: disc(real).mean() * float("nan"))
    disc_before = params(trainer.discriminators)
    batches = trainer._batches(0)
    for i in range(2):
        values, disc_values = trainer.train_iteration([next(batches)], f"it {i}")
        assert values and disc_values == {}
    assert all(torch.equal(disc_before[k], v) for k, v in params(trainer.discriminators).items())
    with pytest.raises(TrainingStopped, match="3 consecutive non-finite disc losses"):
        trainer.train_iteration([next(batches)], "it 3")
    assert trainer.guard.total == {"model": 0, "disc": 3}


def test_checkpoint_round_trip_with_weights_only(tiny_fvrid, tmp_path):
    trainer = Trainer(make_cfg(tiny_fvrid, tmp_path, "STAGE1"), torch.device("cpu"))
    trainer.train_iteration([next(trainer._batches(0))])
    trainer.record = EpochRecord(1, metrics={"syn_val": {"fused": {"mAP": 0.5}}})
    trainer.save("last")
    payload = torch.load(tmp_path / "checkpoint" / "last.pth", map_location="cpu", weights_only=True)
    for key in ("model", "discriminators", "optimizer.model", "optimizer.disc", "scheduler.warmup", "scheduler.decay",
                "scheduler.disc", "scaler.model", "pool.clear", "guard", "hook.best", "hook.history", "rng", "epoch",
                "stage", "config", "metrics", "num_classes"):
        assert key in payload
    assert payload["epoch"] == 1 and payload["stage"] == "STAGE1"
    assert payload["config"]["MODEL"]["NAME"] == "resnet18"
    fresh = Trainer(make_cfg(tiny_fvrid, tmp_path, "STAGE1"), torch.device("cpu"))
    fresh.resume()
    for key, value in trainer.model.state_dict().items():
        assert torch.equal(value, fresh.model.state_dict()[key]), key
    assert fresh.start_epoch == 1
    state_keys = [t.optimizers["model"].state_dict()["state"].keys() for t in (fresh, trainer)]
    assert state_keys[0] == state_keys[1]
    assert fresh.schedulers["warmup"].last_epoch == trainer.schedulers["warmup"].last_epoch == 1


def test_stage2_starts_from_stage1_checkpoint(tiny_fvrid, tmp_path, caplog):
    stage1 = Trainer(make_cfg(tiny_fvrid, tmp_path / "s1", "STAGE1"), torch.device("cpu"))
    stage1.record = EpochRecord(1)
    stage1.save("last")
    path = str(tmp_path / "s1" / "checkpoint" / "last.pth")
    with caplog.at_level(logging.INFO):
        stage2 = Trainer(make_cfg(tiny_fvrid, tmp_path / "s2", "STAGE2", "MODEL.PRETRAIN_PATH", path),
                         torch.device("cpu"))
    assert "a STAGE1 checkpoint" in caplog.text
    for key, value in stage1.model.state_dict().items():
        assert torch.equal(value, stage2.model.state_dict()[key]), key


def test_pretrain_of_another_model_is_named(tiny_fvrid, tmp_path):
    stage1 = Trainer(make_cfg(tiny_fvrid, tmp_path / "s1", "STAGE1"), torch.device("cpu"))
    stage1.record = EpochRecord(1)
    stage1.save("last")
    path = str(tmp_path / "s1" / "checkpoint" / "last.pth")
    with pytest.raises(InputError, match=r"last.pth holds a resnet18 model .* expected resnet34"):
        Trainer(make_cfg(tiny_fvrid, tmp_path / "s2", "STAGE2", "MODEL.PRETRAIN_PATH", path, "MODEL.NAME", "resnet34"),
                torch.device("cpu"))


def test_interrupted_save_leaves_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pth"
    write_checkpoint(path, {}, stage="STAGE1", epoch=1, config={}, num_classes=0)

    def dying_save(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise KeyboardInterrupt("killed during save")

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        write_checkpoint(path, {}, stage="STAGE1", epoch=2, config={}, num_classes=0)
    monkeypatch.undo()
    assert read_weights(str(path), "test", formats=("rvsl",)).meta["epoch"] == 1


class _Exploit:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_safe_load_never_runs_code(tmp_path):
    """Defect 5: a checkpoint is loaded with weights_only=True, so a malicious pickle is refused."""
    marker = tmp_path / "pwned"
    bad = tmp_path / "evil.pth"
    with open(bad, "wb") as handle:
        pickle.dump({"model": _Exploit(marker)}, handle, protocol=2)
    with pytest.raises(InputError, match="evil.pth is not a loadable checkpoint"):
        safe_load(str(bad), "TEST.WEIGHT")
    assert not marker.exists()


def test_not_a_checkpoint_and_wrong_stage_are_named(tmp_path):
    plain = tmp_path / "weights.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, plain)
    with pytest.raises(InputError, match=r"TEST.WEIGHT: .*weights.pth is not an RVSL checkpoint \(missing model"):
        read_weights(str(plain), "TEST.WEIGHT", formats=("rvsl",))
    good = tmp_path / "s2.pth"
    write_checkpoint(good, {}, stage="STAGE2", epoch=1, config={}, num_classes=0)
    with pytest.raises(InputError, match="is a STAGE2 checkpoint; expected STAGE1"):
        read_weights(str(good), "--resume", formats=("rvsl",), stage="STAGE1")


def lr_per_epoch(cfg, epochs):
    """The model optimiser's rate during each epoch, stepping the schedulers as the trainer does (5 iterations
    an epoch)."""
    weight = torch.nn.Parameter(torch.zeros(1))
    optimizers = build_optimizers(cfg, torch.nn.Linear(1, 1), torch.nn.Linear(1, 1), torch.device("cpu"))
    optimizers["model"].param_groups[0]["params"] = [weight]
    schedulers = build_lr_schedulers(cfg, optimizers)
    rates = []
    for _ in range(epochs):
        rates.append(optimizers["model"].param_groups[0]["lr"])
        for _ in range(5):
            optimizers["model"].step()
            optimizers["disc"].step()
            step_schedulers(schedulers, cfg.SOLVER.WARMUP_UNIT, end_of_epoch=False)
        step_schedulers(schedulers, cfg.SOLVER.WARMUP_UNIT, end_of_epoch=True)
    return rates


def test_reference_schedule_as_it_ran():
    """configs/FVRID_reference.yml: the warm-up stepped per epoch, and the schedule stepped once before the first
    epoch, as the reference trainers did: 0-based epoch e runs at step e + 1, the peak (near 1.04e-5) at epoch 18,
    the first decay at 19."""
    from helpers import ROOT
    cfg = load_config(str(ROOT / "configs" / "FVRID_reference.yml"))
    rates = lr_per_epoch(cfg, 200)

    def step(s):  # the schedule's rate at step s, written out by hand
        return 1e-4 * (0.01 + 0.99 * min(s, 200) / 200) * 0.6 ** sum(m <= s for m in cfg.SOLVER.STEPS)

    expected = {0: step(1), 18: 1e-4 * (0.01 + 0.99 * 19 / 200), 19: 1e-4 * (0.01 + 0.99 * 20 / 200) * 0.6,
                199: 1e-4 * 0.6 ** 13}
    for epoch, value in expected.items():
        assert rates[epoch] == pytest.approx(value, rel=1e-9), epoch
        assert rates[epoch] == pytest.approx(step(epoch + 1), rel=1e-9), epoch
    assert max(rates) == rates[18] == pytest.approx(1.0405e-5, rel=1e-9)


def test_schedule_as_written_warms_up_in_iterations():
    """configs/FVRID.yml: 200 warm-up iterations (40 epochs of 5 here), then the milestones by epoch."""
    from helpers import ROOT
    cfg = load_config(str(ROOT / "configs" / "FVRID.yml"))
    rates = lr_per_epoch(cfg, 200)
    assert rates[0] == pytest.approx(1e-6, rel=1e-9)
    assert rates[19] == pytest.approx(1e-4 * (0.01 + 0.99 * 95 / 200), rel=1e-9)  # 95 iterations done
    assert rates[20] == pytest.approx(1e-4 * (0.01 + 0.99 * 100 / 200) * 0.6, rel=1e-9)
    assert rates[45] == pytest.approx(1e-4 * 0.6 ** 3, rel=1e-9)
    assert rates[199] == pytest.approx(1e-4 * 0.6 ** 13, rel=1e-9)


def test_resume_refuses_a_run_of_another_shape_before_touching_anything(tiny_fvrid, tmp_path):
    trainer = Trainer(make_cfg(tiny_fvrid, tmp_path, "STAGE1"), torch.device("cpu"))
    trainer.record = EpochRecord(1)
    trainer.save("last")
    other = Trainer(make_cfg(tiny_fvrid, tmp_path, "STAGE1", "VAL.SYN_IDENTITIES", "1"), torch.device("cpu"))
    before = params(other.model)
    with pytest.raises(InputError, match=r"trained on 6 identities, the data now gives 5"):
        other.resume()
    assert all(torch.equal(before[k], v) for k, v in params(other.model).items())


def test_gradient_accumulation_averages_the_micro_batches(tiny_fvrid, tmp_path, monkeypatch):
    """SOLVER.ACCUM_STEPS 2: one update from two loader batches, with the mean of their gradients and losses."""
    trainer = Trainer(make_cfg(tiny_fvrid, tmp_path, "STAGE1", "SOLVER.ACCUM_STEPS", "2"), torch.device("cpu"))
    batches = [to_device(b, torch.device("cpu")) for b in list(trainer._batches(0))[:2]]
    single = []
    for batch in batches:  # each batch's own gradient
        trainer.model.zero_grad()
        sum(trainer.step(batch).losses.values()).backward()
        single.append({n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None})
    captured, apply = {}, trainer._step

    def capture_then_apply(name):
        module = trainer.model if name == "model" else trainer.discriminators
        captured[name] = {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}
        apply(name)

    monkeypatch.setattr(trainer, "_step", capture_then_apply)
    values, disc_values = trainer.train_iteration(batches)
    assert set(captured) == {"model", "disc"} and values and disc_values
    for name, grad in captured["model"].items():
        torch.testing.assert_close(grad, (single[0][name] + single[1][name]) / 2, rtol=1e-4, atol=1e-6)
    # one epoch counts iterations of two batches
    assert len(list(trainer._iterations(0))) == len(list(trainer._batches(0))) // 2


def test_fp16_gradient_scaler_start_lets_stage3_update(tiny_fvrid, tmp_path):
    """fp16 (emulated with CPU autocast): from the trainer's first loss scale, stage 3 updates within 3 steps
    (from torch's default 2**16 the first 8 were skipped)."""
    torch.manual_seed(0)
    trainer = Trainer(make_cfg(tiny_fvrid, tmp_path, "STAGE3"), torch.device("cpu"))
    scaler, optimizer = torch.amp.GradScaler("cpu", init_scale=GRAD_SCALE_START), trainer.optimizers["model"]
    before = params(trainer.model)
    batches = (batch for epoch in range(3) for batch in trainer._batches(epoch))
    for _ in range(3):
        optimizer.zero_grad()
        with torch.autocast("cpu", dtype=torch.float16):
            losses = trainer.step(to_device(next(batches), torch.device("cpu"))).losses
        scaler.scale(sum(losses.values())).backward()
        scaler.step(optimizer)
        scaler.update()
    assert any(not torch.equal(before[k], v) for k, v in params(trainer.model).items())


def overflowing_scalers(trainer, names=("model", "disc")):
    """fp16-style gradient scalers (on the CPU) whose scale (near float32's largest, barely lowered on a skip)
    overflows every scaled loss above 1.2, such as the model's: each such update is skipped."""
    for name in names:
        trainer.scalers[name] = torch.amp.GradScaler("cpu", init_scale=3e38, backoff_factor=0.9999)
        trainer.checkpointer.checkpointables[f"scaler.{name}"] = trainer.scalers[name]


def test_updates_skipped_by_the_loss_scaler_are_counted_and_hold_the_warmup(tiny_fvrid, tmp_path):
    trainer = Trainer(make_cfg(tiny_fvrid, tmp_path, "STAGE1", "SOLVER.WARMUP_LENGTH", "5"), torch.device("cpu"))
    overflowing_scalers(trainer, ["model"])
    before, lr = params(trainer.model), trainer.optimizers["model"].param_groups[0]["lr"]
    values, disc_values = trainer.train_iteration([next(trainer._batches(0))], "it 1")
    assert values and disc_values  # finite losses: the scaler, not the guard, skipped the model update
    assert all(torch.equal(before[k], v) for k, v in params(trainer.model).items())
    assert trainer.guard.scaler_skipped == {"model": 1, "disc": 0}
    assert trainer.schedulers["warmup"].last_epoch == 0 and trainer.optimizers["model"].param_groups[0]["lr"] == lr
    assert trainer.guard.state_dict()["scaler_skipped"] == {"model": 1, "disc": 0}  # kept across a resume


def test_an_epoch_of_skipped_updates_stops_the_run_and_skips_are_in_the_epoch_summary(tiny_fvrid, tmp_path, caplog):
    trainer = Trainer(make_cfg(tiny_fvrid, tmp_path, "STAGE1"), torch.device("cpu"))
    overflowing_scalers(trainer, ["model"])
    with caplog.at_level(logging.INFO), pytest.raises(TrainingStopped, match="every model update of epoch 1") as stop:
        trainer.train()
    assert not (tmp_path / "checkpoint" / "last.pth").exists()  # nothing of the broken epoch is saved
    iterations = len(list(trainer._iterations(0)))
    assert f"model {iterations} of {iterations} skipped ({iterations} by the fp16 loss scaler" in str(stop.value)
    assert trainer.guard.scaler_skipped == {"model": iterations, "disc": 0} and "disc" not in str(stop.value)


def test_skipped_updates_are_in_the_epoch_summary(tiny_fvrid, tmp_path, caplog, monkeypatch):
    """One update of the epoch skipped by the loss scaler (its first): named in the epoch's summary line."""
    trainer = Trainer(make_cfg(tiny_fvrid, tmp_path, "STAGE1", "SOLVER.EVAL_PERIOD", "0"), torch.device("cpu"))
    trainer.hooks = []  # validation and checkpoints are not what this test is about
    calls = []

    def first_skipped(optimizer, scaler):
        calls.append(1)
        return len(calls) > 1

    monkeypatch.setattr("rvsl.engine.trainer.scaled_step", first_skipped)
    with caplog.at_level(logging.INFO):
        trainer.train()
    iterations = len(list(trainer._iterations(0)))
    assert (f"updates skipped: model 1 of {iterations} skipped (1 by the fp16 loss scaler, 0 non-finite losses)"
            in caplog.text)
