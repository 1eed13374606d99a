"""The one training engine: the loop, the two updates per iteration, validation, checkpoints and resume."""

import argparse
import itertools
import logging
import time
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler
from torch.utils.data import DataLoader
from tqdm import tqdm

from .. import modeling
from ..checkpoint import MODEL_KEY, RVSL_FORMAT, read_weights
from ..config import CfgNode
from ..data.build import STAGE_TEST_SET, TrainLoaders, build_test_loader, build_train_loaders, has_test_set
from ..data.check import startup_check
from ..evaluation import NonFiniteFeatures, inference_on_dataset, real_proxies
from ..modeling import DOMAINS, RVSL, ImagePool, compile_networks
from ..utils import comm
from ..utils.errors import InputError
from ..utils.misc import amp_dtype, autocast, channels_last, to_device
from .checkpoint import Checkpointer
from .defaults import default_setup
from .distributed import (DiscriminatorLoss, GatheredPool, StepModule, accumulating, build_guard,
                          convert_sync_batchnorm, wrap)
from .divergence import LossGrowth
from .guard import TrainingStopped, grad_scaler, restore_running_stats, save_running_stats, scaled_step
from .hooks import BestMetricHook, CheckpointHook, EpochRecord, EvalHook, HistoryHook, HookBase, TensorBoardHook
from .inference import build_evaluators
from .interrupt import StopFlag
from .loss_sums import Losses, LossSums, mean_losses
from .memory import choose_activation_checkpoint
from .pretrain import check_same_model, load_pretrained
from .report import format_metrics
from .solver import build_lr_schedulers, build_optimizers, step_schedulers
from .stages import REAL_DOMAIN, StageStep, adversarial_domains, build_step
from .tensorboard import TensorBoardWriter, strip_images

logger = logging.getLogger(__name__)

TestSet = Tuple[DataLoader, int]  # a test set's loader (query images first) and its number of queries


class Trainer:
    """Trains one stage: builds data, networks, optimisers and the stage step from the config.

    Like fast-reid's DefaultTrainer, each part is made by an overridable ``build_*`` method, called in this
    order: :meth:`build_data`, :meth:`build_model`, :meth:`build_discriminators`, :meth:`build_optimizers`,
    :meth:`build_schedulers`, :meth:`build_step`, :meth:`build_hooks`, :meth:`build_checkpointer`.
    Everything a resumed run needs is named once, in :attr:`checkpointer`; saving and resuming loop
    over it. End-of-epoch work (validation, best epoch, history, checkpoints) is done by hooks, each given
    the epoch's :class:`~rvsl.engine.hooks.EpochRecord`.

    Under ``torchrun`` every process builds the same trainer on its share of each batch; the two updates'
    loss modules are wrapped in DistributedDataParallel, every process validates (on its shard of the
    test sets), and only rank 0 runs the hooks that write (best epoch, history, checkpoints, TensorBoard).
    """

    def __init__(self, cfg: CfgNode, device: torch.device):
        self.cfg = cfg
        self.device = device
        self.output_dir = Path(cfg.OUTPUT_DIR)
        self.max_epochs = cfg.SOLVER.MAX_EPOCHS
        self.accum_steps = cfg.SOLVER.ACCUM_STEPS
        self.loaders, self.test = self.build_data(cfg)
        self.model = self.build_model(cfg)
        self.discriminators = self.build_discriminators(cfg)
        self.channels_last = channels_last(cfg.MODEL.CHANNELS_LAST, device, self.model, self.discriminators)
        if cfg.SOLVER.COMPILE:
            compile_networks(self.model, self.discriminators)
        self.pools = {d: ImagePool(cfg.MODEL.POOL_SIZE) for d in DOMAINS}
        self.pool_states = {d: GatheredPool(pool) for d, pool in self.pools.items()}  # every process's, saved
        self.optimizers = self.build_optimizers(cfg)
        self.schedulers = self.build_schedulers(cfg)
        self.amp_dtype = amp_dtype(cfg.SOLVER.AMP, device)
        logger.info("mixed precision: %s; channels-last %s; fused Adam %s; compiled %s; gradient accumulation %d",
                    {torch.bfloat16: "bf16", torch.float16: "fp16 with gradient scaling"}.get(self.amp_dtype, "off"),
                    self.channels_last, self.optimizers["model"].defaults.get("fused"), bool(cfg.SOLVER.COMPILE),
                    self.accum_steps)
        self.scalers = {name: grad_scaler(device, self.amp_dtype == torch.float16) for name in self.optimizers}
        self.guard = build_guard(cfg)
        self.stop = StopFlag(device)  # SIGTERM / SIGINT: stop at the next iteration boundary (engine/interrupt.py)
        self.loss_growth = LossGrowth()
        self.step = self.build_step(cfg)
        # What each update calls: under torchrun, in DDP (single process: the step itself, unwrapped)
        self.step_module = wrap(StepModule(self.model, self.step), device)
        self.disc_loss = wrap(DiscriminatorLoss(self.discriminators, self.pools, adversarial_domains(cfg.MODE.STAGE),
                                                cfg.MODEL.D_BATCHED_PASS), device)
        self.hooks = self.build_hooks(cfg)
        self.checkpointer = self.build_checkpointer()
        self.start_epoch = 0
        self.record: Optional[EpochRecord] = None  # the last finished epoch's
        if cfg.MODEL.PRETRAIN_PATH:
            self.load_pretrained(cfg.MODEL.PRETRAIN_PATH)
        else:
            logger.info("MODEL.PRETRAIN_PATH is empty: starting from random weights")

    # ------------------------------------------------------------------ builders
    def build_data(self, cfg: CfgNode) -> Tuple[TrainLoaders, Optional[TestSet]]:
        """The stage's training loaders and its test set (None when absent); override to train on other data."""
        loaders = build_train_loaders(cfg)
        test_set = STAGE_TEST_SET[cfg.MODE.STAGE]
        # an absent test set is said once, by the start-up check
        test = build_test_loader(cfg, test_set) if has_test_set(cfg, test_set) else None
        if cfg.SOLVER.BEST_METRIC.startswith("test_labels/"):
            if test is None:
                raise InputError(f"SOLVER.BEST_METRIC {cfg.SOLVER.BEST_METRIC} needs the {test_set} test set, "
                                 "which is absent; choose a label-free metric")
            logger.warning("SOLVER.BEST_METRIC %s chooses best.pth on the labelled %s test set: numbers reported "
                           "on that set for best.pth are chosen on test labels", cfg.SOLVER.BEST_METRIC, test_set)
        return loaders, test

    def build_model(self, cfg: CfgNode) -> RVSL:
        """The RVSL networks on the device for the data's identities, with SyncBatchNorm (``MODEL.SYNC_BN``, several
        processes; it replaces the layers in place, before anything holds them) and activation checkpointing
        (``MODEL.ACTIVATION_CHECKPOINT``, "auto" resolved for the device, kept in :attr:`activation_checkpoint`)."""
        model = modeling.build_model(cfg, self.loaders.num_classes).to(self.device)
        model = convert_sync_batchnorm(cfg, model, self.device)
        self.activation_checkpoint = choose_activation_checkpoint(cfg, self.device)
        model.set_activation_checkpoint(self.activation_checkpoint)
        return model

    def build_discriminators(self, cfg: CfgNode) -> nn.Module:
        """The domain discriminators (PatchGAN) on the device."""
        return modeling.build_discriminators(cfg).to(self.device)

    def build_optimizers(self, cfg: CfgNode) -> Dict[str, Optimizer]:
        """``{"model": ..., "disc": ...}``: the two updates' optimisers."""
        return build_optimizers(cfg, self.model, self.discriminators, self.device)

    def build_schedulers(self, cfg: CfgNode) -> Dict[str, LRScheduler]:
        """The learning-rate schedulers of :attr:`optimizers` (warm-up, decay, the discriminators')."""
        return build_lr_schedulers(cfg, self.optimizers)

    def build_step(self, cfg: CfgNode) -> StageStep:
        """The stage's step: one batch to the named losses of the model update and the discriminators' inputs."""
        return build_step(cfg, self.model, self.discriminators)

    def build_hooks(self, cfg: CfgNode) -> List[HookBase]:
        """The end-of-epoch hooks, in order: validation on every process; under torchrun only rank 0 adds the
        ones that write (best epoch, history, checkpoints, TensorBoard)."""
        hooks: List[HookBase] = [EvalHook(cfg.SOLVER.EVAL_PERIOD, self.validate)]
        if comm.is_main_process():
            held_out = (self.loaders.val_real, self.test and self.test[0],
                        self.loaders.val_syn and self.loaders.val_syn[0])  # the strip's images: the first there is
            hooks += [BestMetricHook(cfg.SOLVER.BEST_METRIC), HistoryHook(self.output_dir, cfg.MODE.STAGE),
                      CheckpointHook(), TensorBoardHook(TensorBoardWriter(self.output_dir), strip_images(held_out))]
        return hooks

    def build_checkpointer(self) -> Checkpointer:
        """The checkpointer of every object a resumed run needs, each named once."""
        return Checkpointer(self.output_dir / "checkpoint", {
            MODEL_KEY: self.model,
            "discriminators": self.discriminators,
            **{f"optimizer.{name}": obj for name, obj in self.optimizers.items()},
            **{f"scheduler.{name}": obj for name, obj in self.schedulers.items()},
            **{f"scaler.{name}": obj for name, obj in self.scalers.items()},
            **{f"pool.{name}": obj for name, obj in self.pool_states.items()},
            "guard": self.guard,
            **{f"hook.{hook.name}": hook for hook in self.hooks if hasattr(hook, "state_dict")},
        })

    # ------------------------------------------------------------------ state
    def save(self, name: str) -> Path:
        """Write ``checkpoint/<name>.pth`` with the full training state and the epoch's record."""
        return self.checkpointer.save(name, stage=self.cfg.MODE.STAGE, epoch=self.record.epoch, config=self.cfg,
                                      metrics=self.record.metrics, num_classes=self.loaders.num_classes)

    def resume(self) -> None:
        """Restore the full training state from ``OUTPUT_DIR/checkpoint/last.pth``, after checking it fits."""
        path = self.checkpointer.save_dir / "last.pth"
        if not path.is_file():
            raise InputError(f"--resume: no checkpoint to resume from at {path}")
        weights = read_weights(str(path), "--resume", formats=(RVSL_FORMAT,), stage=self.cfg.MODE.STAGE)
        check_same_model(self.cfg, weights.config, str(path))
        if weights.meta.get("num_classes") != self.loaders.num_classes:
            raise InputError(f"--resume: {path} was trained on {weights.meta.get('num_classes')} identities, the data "
                             f"now gives {self.loaders.num_classes} (changed data or VAL.SYN_IDENTITIES?)")
        self.checkpointer.restore(weights, str(path))
        self.start_epoch = weights.meta["epoch"]
        logger.info("resumed from %s after epoch %d", path, self.start_epoch)

    def load_pretrained(self, path: str) -> None:
        """Start from ``path``: a previous stage's checkpoint, a reference-format or an ImageNet state dict."""
        load_pretrained(self.model, self.discriminators, self.cfg, path)

    # ------------------------------------------------------------------ loop
    def _batches(self, epoch: int) -> Iterator[Dict]:
        """The epoch's batches: synthetic pairs (stage 1), or real batches each with a synthetic one."""
        syn = self.loaders.syn
        if self.loaders.real is None:
            syn.batch_sampler.set_epoch(epoch)
            yield from syn
            return

        def endless_syn() -> Iterator[Dict]:
            for round_ in itertools.count():
                syn.batch_sampler.set_epoch(epoch * 1000 + round_)
                yield from syn

        self.loaders.real.batch_sampler.set_epoch(epoch)
        for real, syn_batch in zip(self.loaders.real, endless_syn()):
            yield {"real": real, "syn": syn_batch}

    def _backward(self, name: str, loss: Tensor) -> None:
        """Accumulate the gradients of ``loss`` (a micro-batch's share) for update ``name``, through its scaler."""
        self.scalers[name].scale(loss / self.accum_steps).backward()

    def _step(self, name: str) -> bool:
        """Apply update ``name`` ("model" or "disc") with the accumulated gradients, then clear them; whether it
        was applied (the fp16 loss scaler skips it on inf/NaN gradients; the guard counts that)."""
        optimizer = self.optimizers[name]
        applied = self.guard.stepped(name, scaled_step(optimizer, self.scalers[name]))
        optimizer.zero_grad(set_to_none=True)
        return applied

    def train_iteration(self, micro_batches: Sequence[Dict], where: str = "") -> Tuple[Losses, Losses]:
        """One ReID/generator update, then one discriminator update, each over the gradients of
        ``micro_batches`` (``SOLVER.ACCUM_STEPS`` loader batches); returns both updates' named losses,
        averaged over the micro-batches, as detached tensors on the device (read them when logging).

        A non-finite model loss skips the whole iteration (and puts back the BatchNorm statistics of its
        forward passes); a non-finite discriminator loss skips that update only. Each update counts its own
        consecutive failures (see :class:`NonFiniteGuard`). The warm-up advances only on an applied update.
        """
        for optimizer in self.optimizers.values():
            optimizer.zero_grad(set_to_none=True)
        self.discriminators.requires_grad_(False)
        running_stats = save_running_stats(self.model) if self.guard.limit else []
        results = []
        for number, batch in enumerate(micro_batches):
            with accumulating(self.step_module, number < len(micro_batches) - 1):
                batch = to_device(batch, self.device, self.channels_last)
                with autocast(self.device, self.amp_dtype):
                    result = self.step_module(batch)
                total = sum(result.losses.values())
                if not self.guard.check("model", result.losses, total, where):
                    restore_running_stats(running_stats)
                    return {}, {}
                self._backward("model", total)
            results.append(result)
        if self._step("model"):
            step_schedulers(self.schedulers, self.cfg.SOLVER.WARMUP_UNIT, end_of_epoch=False)

        self.discriminators.requires_grad_(True)
        disc_losses = []
        for number, result in enumerate(results):
            with accumulating(self.disc_loss, number < len(results) - 1):
                with autocast(self.device, self.amp_dtype):
                    losses = self.disc_loss(result.adversarial)
                disc_total = sum(losses.values())
                if not self.guard.check("disc", losses, disc_total, where):
                    return mean_losses([r.losses for r in results]), {}
                self._backward("disc", disc_total)
            disc_losses.append(losses)
        self._step("disc")
        return mean_losses([r.losses for r in results]), mean_losses(disc_losses)

    def _iterations(self, epoch: int) -> Iterator[List[Dict]]:
        """The epoch's iterations, each a list of ``SOLVER.ACCUM_STEPS`` loader batches (a short tail is dropped)."""
        batches = self._batches(epoch)
        while True:
            group = list(itertools.islice(batches, self.accum_steps))
            if len(group) < self.accum_steps:
                return
            yield group

    def train_epoch(self, epoch: int) -> Tuple[Dict[str, float], Dict[str, float]]:
        """Train one epoch; returns the epoch means of the model's and the discriminators' named losses.

        Loss values stay on the device and are read once per ``SOLVER.LOG_PERIOD`` iterations, so the
        step itself never waits for the GPU (except for the non-finite check, ``SOLVER.MAX_NONFINITE``).
        """
        for module in (self.model, self.discriminators):
            module.train()
        driver = self.loaders.real if self.loaders.real is not None else self.loaders.syn
        num_iters = len(driver) // self.accum_steps  # the P x K sampler draws the epoch's batches to count them
        sums = LossSums()
        bar = tqdm(self._iterations(epoch), total=num_iters, desc=f"{self.cfg.MODE.STAGE} epoch {epoch + 1}",
                   disable=None, dynamic_ncols=True, leave=False)
        for iteration, micro_batches in enumerate(bar):
            where = f"epoch {epoch + 1} iteration {iteration + 1}"
            values = self.train_iteration(micro_batches, where)
            if self.loss_growth.first is None and values[0]:  # read once: the run's first finite iteration
                self.loss_growth.start(float(sum(values[0].values())))
            sums.add(values)
            if (iteration + 1) % self.cfg.SOLVER.LOG_PERIOD == 0:
                means = sums.means()  # the one host-device synchronisation per LOG_PERIOD
                bar.set_postfix(loss=f"{sum(means[0].values()):.3f}")
                self.loss_growth.check(sum(means[0].values()), where)
                logger.info("epoch %d iter %d/%d lr %.2e  %s", epoch + 1, iteration + 1, num_iters,
                            self.optimizers["model"].param_groups[0]["lr"],
                            "  ".join(f"{k} {v:.4f}" for part in means for k, v in part.items()))
            self._stop_if_requested(where)
        losses, disc_losses = sums.means()
        self.loss_growth.check(sum(losses.values()), f"epoch {epoch + 1} (its mean)")
        return losses, disc_losses

    def _evaluate_reid(self, loader: DataLoader, num_query: int) -> Dict:
        return inference_on_dataset(self.model, loader, build_evaluators(self.cfg, num_query), self.device,
                                    self.amp_dtype)

    def validate(self) -> Dict:
        """Metrics by source: ``syn_val`` and ``real_proxy`` read no real label; ``test_labels`` is the stage's
        labelled test set, reported (chosen on only when ``SOLVER.BEST_METRIC`` names it).

        A model whose features hold NaN or inf has diverged: :class:`TrainingStopped`, before this epoch's
        checkpoint is written, so ``last.pth`` keeps the previous epoch."""
        try:
            return self._validate()
        except NonFiniteFeatures as exc:
            epoch = self.record.epoch if self.record else self.start_epoch
            last = self.checkpointer.save_dir / "last.pth"
            kept = f"{last} keeps an earlier epoch" if last.is_file() else "no checkpoint was written"
            raise TrainingStopped(f"validation after epoch {epoch}: {exc}: the model has diverged (is SOLVER.BASE_LR "
                                  f"too high?); stopped before saving epoch {epoch}: {kept}") from exc

    def _validate(self) -> Dict:
        stage, results = self.cfg.MODE.STAGE, {}
        if self.loaders.val_syn is not None:
            results["syn_val"] = self._evaluate_reid(*self.loaders.val_syn)
            logger.info("synthetic validation split:\n%s", format_metrics(results["syn_val"]))
        if self.loaders.val_real is not None:
            results["real_proxy"] = real_proxies(self.model, self.loaders.val_real, REAL_DOMAIN[stage], self.device,
                                                 self.amp_dtype)
            logger.info("label-free proxies on held-out real images: %s",
                        "  ".join(f"{k} {v:.4f}" for k, v in results["real_proxy"].items()))
        if self.test is not None:
            results["test_labels"] = self._evaluate_reid(*self.test)
            logger.info("%s test set (labelled; reported):\n%s", STAGE_TEST_SET[stage],
                        format_metrics(results["test_labels"]))
        return results

    def _stop_if_requested(self, where: str) -> None:
        """Raise :class:`Interrupted` when a stop signal came (on any process), leaving the last checkpoint as it is."""
        if self.stop.requested():
            raise self._interrupted(where)

    def _interrupted(self, where: str) -> Exception:
        return self.stop.interrupted(where, self.checkpointer.save_dir / "last.pth",
                                     self.record.epoch if self.record else self.start_epoch)

    def train(self) -> None:
        """Run the remaining epochs; after each, the hooks validate, track the best epoch, record and save.

        SIGTERM or SIGINT stops the run at the next iteration boundary (:mod:`rvsl.engine.interrupt`); the
        hooks' files (TensorBoard) are flushed however the loop ends."""
        with self.stop.installed():
            try:
                self._train()
            except RuntimeError as exc:  # loader workers ended by the same signal (sent to every process of a job)
                if self.stop.signum is None or "DataLoader worker" not in str(exc):
                    raise
                raise self._interrupted("a batch load (the signal ended the loader's workers too)") from exc
            finally:
                for hook in self.hooks:
                    hook.close()

    def _train(self) -> None:
        cfg = self.cfg
        logger.info("training %s for epochs %d..%d", cfg.MODE.STAGE, self.start_epoch + 1, self.max_epochs)
        for epoch in range(self.start_epoch, self.max_epochs):
            start = time.perf_counter()
            losses, disc_losses = self.train_epoch(epoch)
            skipped = self.guard.end_epoch(f"epoch {epoch + 1}")  # stops when every update of the epoch was skipped
            comm.broadcast_buffers(self.model)  # rank 0's BatchNorm statistics, for validation and the checkpoint
            for pool in self.pool_states.values():  # and every process's replay pool, for the checkpoint
                pool.gather()
            step_schedulers(self.schedulers, cfg.SOLVER.WARMUP_UNIT, end_of_epoch=True)
            seconds = time.perf_counter() - start
            logger.info("epoch %d/%d done in %.1f s  %s%s", epoch + 1, self.max_epochs, seconds,
                        "  ".join(f"{k} {v:.4f}" for k, v in {**losses, **disc_losses}.items()),
                        f"  updates skipped: {skipped}" if skipped else "")
            record = self.record = EpochRecord(epoch + 1, seconds, losses, disc_losses)
            for hook in self.hooks:
                hook.after_epoch(self, record)
            for hook in self.hooks:
                hook.after_checkpoint(self, record)
            if epoch + 1 < self.max_epochs:  # a signal during the last epoch's validation: the run is complete
                self._stop_if_requested(f"the end of epoch {epoch + 1}")
        for hook in self.hooks:
            hook.after_train(self)



def train_stage(cfg: CfgNode, args: argparse.Namespace) -> None:
    """Entry point of the three stage scripts: set up, build the trainer, (resume,) train."""
    last = Path(cfg.OUTPUT_DIR) / "checkpoint" / "last.pth"
    resume = args.resume or (args.auto_resume and last.exists())  # the one resume rule, also train.sh's
    if last.exists() != resume:  # checked before set-up rewrites config.yaml
        raise InputError(f"{last} exists: pass --resume to continue that run, or choose another OUTPUT_DIR"
                         if last.exists() else f"--resume: no checkpoint to resume from at {last}")
    device = default_setup(cfg)
    startup_check(cfg)
    trainer = Trainer(cfg, device)
    if resume:
        trainer.resume()
    trainer.train()
