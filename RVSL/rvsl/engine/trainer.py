"""The one training engine: loop, optimisers, mixed precision, validation, checkpoints and resume."""

import argparse
import itertools
import logging
import math
import time
from collections import defaultdict
from pathlib import Path
from typing import Dict, Iterator, Optional

import torch
from torch import Tensor, nn
from tqdm import tqdm

from ..config import CfgNode, config_from_dict, config_to_dict
from ..data.check import startup_check
from ..data.build import STAGE_TEST_SET, build_test_loader, build_train_loaders
from ..evaluation import inference_on_dataset
from ..modeling import ImagePool, build_discriminator, build_model, load_backbone_weights, load_matching_state
from ..utils.errors import InputError
from ..utils.plot import plot_losses
from .checkpoint import is_rvsl_checkpoint, load_checkpoint, rng_state, safe_load, save_checkpoint, set_rng_state
from .defaults import TrainingStopped, default_setup, write_json
from .solver import LinearDecayLR, WarmupMultiStepLR
from .stages import build_step, discriminator_loss

logger = logging.getLogger(__name__)

DOMAINS = ("clear", "hazy")
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def amp_dtype(cfg: CfgNode, device: torch.device) -> Optional[torch.dtype]:
    """The autocast dtype of ``SOLVER.AMP`` on CUDA; None (full precision) otherwise."""
    return AMP_DTYPES.get(cfg.SOLVER.AMP) if device.type == "cuda" else None


def to_device(batch, device: torch.device):
    """Move every tensor of a (nested) batch dict to ``device``."""
    if isinstance(batch, dict):
        return {key: to_device(value, device) for key, value in batch.items()}
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    return batch


def format_metrics(metrics: Dict) -> str:
    """One line per path: mAP, rank-1/5/10 and mINP in percent; then image quality if present."""
    lines = [f"{'path':<7} {'mAP':>6} {'R-1':>6} {'R-5':>6} {'R-10':>6} {'mINP':>6}"]
    for path in ("clear", "hazy", "fusion"):
        if path in metrics:
            m = metrics[path]
            lines.append(f"{path:<7} " + " ".join(f"{100 * m[k]:6.2f}" for k in ("mAP", "rank1", "rank5", "rank10", "mINP")))
    if "quality" in metrics:
        lines.append("  ".join(f"{k} {v:.4f}" for k, v in sorted(metrics["quality"].items())))
    return "\n".join(lines)


class Trainer:
    """Trains one stage: builds data, networks, optimisers and the stage step from the config."""

    def __init__(self, cfg: CfgNode, device: torch.device):
        self.cfg = cfg
        self.device = device
        self.output_dir = Path(cfg.OUTPUT_DIR)
        self.checkpoint_dir = self.output_dir / "checkpoint"
        self.loaders = build_train_loaders(cfg)
        self.test_loader, self.num_query = build_test_loader(cfg, STAGE_TEST_SET[cfg.MODE.STAGE])

        self.model = build_model(cfg, self.loaders.num_classes).to(device)
        # D_clear judges clear images, D_hazy hazy ones ("clear" itself is a ModuleDict method name).
        self.discriminators = nn.ModuleDict({f"D_{d}": build_discriminator(cfg) for d in DOMAINS}).to(device)
        self.disc_by_domain = {d: self.discriminators[f"D_{d}"] for d in DOMAINS}
        self.pools = {d: ImagePool(cfg.MODEL.POOL_SIZE) for d in DOMAINS}
        self.optimizer = torch.optim.Adam([p for p in self.model.parameters() if p.requires_grad],
                                          lr=cfg.SOLVER.BASE_LR, weight_decay=cfg.SOLVER.WEIGHT_DECAY)
        self.disc_optimizer = torch.optim.Adam(self.discriminators.parameters(), lr=cfg.SOLVER.DISC_LR,
                                               betas=tuple(cfg.SOLVER.DISC_BETAS))
        self.scheduler = WarmupMultiStepLR(self.optimizer, cfg.SOLVER.STEPS, cfg.SOLVER.GAMMA,
                                           cfg.SOLVER.WARMUP_FACTOR, cfg.SOLVER.WARMUP_ITERS)
        self.disc_scheduler = LinearDecayLR(self.disc_optimizer, cfg.SOLVER.MAX_EPOCHS)
        self.amp_dtype = amp_dtype(cfg, device)
        use_scaler = self.amp_dtype == torch.float16
        self.scalers = {name: torch.amp.GradScaler(device.type, enabled=use_scaler) for name in ("model", "disc")}
        self.step = build_step(cfg, self.model, self.disc_by_domain)

        self.start_epoch = 0
        self.best_score = -math.inf
        self.best_epoch = 0
        self.nonfinite_steps = 0
        self._consecutive_nonfinite = 0
        self.history = []
        if cfg.MODEL.PRETRAIN_PATH:
            self.load_pretrained(cfg.MODEL.PRETRAIN_PATH)
        else:
            logger.info("MODEL.PRETRAIN_PATH is empty: starting from random weights")

    # ------------------------------------------------------------------ state
    def state_dict(self) -> Dict:
        """Everything a resumed run needs to continue exactly, as tensors and plain data."""
        return {
            "model": self.model.state_dict(),
            "discriminators": self.discriminators.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "disc_optimizer": self.disc_optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "disc_scheduler": self.disc_scheduler.state_dict(),
            "scalers": {name: scaler.state_dict() for name, scaler in self.scalers.items()},
            "pools": {d: pool.state_dict() for d, pool in self.pools.items()},
            "best_score": self.best_score,
            "best_epoch": self.best_epoch,
            "nonfinite_steps": self.nonfinite_steps,
            "history": self.history,
            "num_classes": self.loaders.num_classes,
            "rng": rng_state(),
            "stage": self.cfg.MODE.STAGE,
            "config": config_to_dict(self.cfg),
        }

    def _check_model_matches(self, payload: Dict, path: str) -> None:
        saved = config_from_dict(payload["config"]).MODEL
        if saved.NAME != self.cfg.MODEL.NAME or saved.LAST_STRIDE != self.cfg.MODEL.LAST_STRIDE:
            raise InputError(f"{path} holds a {saved.NAME} model (last stride {saved.LAST_STRIDE}); "
                             f"expected {self.cfg.MODEL.NAME} (last stride {self.cfg.MODEL.LAST_STRIDE})")

    def resume(self) -> None:
        """Restore the full training state from ``OUTPUT_DIR/checkpoint/last.pth``."""
        path = self.checkpoint_dir / "last.pth"
        if not path.is_file():
            raise InputError(f"--resume: no checkpoint to resume from at {path}")
        payload = load_checkpoint(str(path), "--resume", stage=self.cfg.MODE.STAGE)
        self._check_model_matches(payload, str(path))
        self.model.load_state_dict(payload["model"])
        self.discriminators.load_state_dict(payload["discriminators"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.disc_optimizer.load_state_dict(payload["disc_optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        self.disc_scheduler.load_state_dict(payload["disc_scheduler"])
        for name, scaler in self.scalers.items():
            scaler.load_state_dict(payload["scalers"][name])
        for domain, pool in self.pools.items():
            pool.load_state_dict(payload["pools"][domain])
        self.start_epoch = payload["epoch"]
        self.best_score, self.best_epoch = payload["best_score"], payload["best_epoch"]
        self.nonfinite_steps = payload["nonfinite_steps"]
        self.history = list(payload["history"])
        set_rng_state(payload["rng"])
        logger.info("resumed from %s after epoch %d (best %s %.4f at epoch %d)", path, self.start_epoch,
                    self.cfg.SOLVER.BEST_METRIC, self.best_score, self.best_epoch)

    def load_pretrained(self, path: str) -> None:
        """Start from a previous stage's checkpoint (matching tensors only) or an ImageNet state dict."""
        payload = safe_load(path, "MODEL.PRETRAIN_PATH")
        if not is_rvsl_checkpoint(payload):
            load_backbone_weights(self.model, path)
            return
        self._check_model_matches(payload, path)
        logger.info("starting from %s (a %s checkpoint, epoch %d)", path, payload["stage"], payload["epoch"])
        loaded, _ = load_matching_state(self.model, payload["model"])  # logs what it skipped
        if not loaded:
            raise InputError(f"MODEL.PRETRAIN_PATH {path}: no tensor matches the model")
        if "discriminators" in payload:
            load_matching_state(self.discriminators, payload["discriminators"])

    def save(self, epoch: int, metrics: Dict) -> None:
        """Write ``last.pth`` (and ``best.pth`` when the validation score improved) atomically."""
        payload = self.state_dict()
        payload.update(epoch=epoch, metrics=metrics)
        save_checkpoint(payload, self.checkpoint_dir / "last.pth")
        if metrics and self.best_epoch == epoch:
            save_checkpoint(payload, self.checkpoint_dir / "best.pth")
            logger.info("new best %s %.4f: %s", self.cfg.SOLVER.BEST_METRIC, self.best_score,
                        self.checkpoint_dir / "best.pth")

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

    def _check_finite(self, losses: Dict[str, Tensor], total: Tensor, epoch: int, iteration: int) -> bool:
        """Count a non-finite loss and name it; stop after ``SOLVER.MAX_NONFINITE`` in a row."""
        if torch.isfinite(total):
            self._consecutive_nonfinite = 0
            return True
        self.nonfinite_steps += 1
        self._consecutive_nonfinite += 1
        names = [name for name, value in losses.items() if not torch.isfinite(value)]
        logger.warning("non-finite loss %s at epoch %d iteration %d: step skipped (%d in a row)",
                       ", ".join(names), epoch + 1, iteration + 1, self._consecutive_nonfinite)
        if self._consecutive_nonfinite >= self.cfg.SOLVER.MAX_NONFINITE:
            raise TrainingStopped(
                f"{self._consecutive_nonfinite} consecutive non-finite losses ({', '.join(names)}) at epoch "
                f"{epoch + 1}; stopped. The last good checkpoint is kept at {self.checkpoint_dir / 'last.pth'}")
        return False

    def _optimize(self, name: str, optimizer: torch.optim.Optimizer, loss: Tensor) -> None:
        scaler = self.scalers[name]
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    def train_iteration(self, batch: Dict, epoch: int, iteration: int) -> Dict[str, float]:
        """One generator/ReID update then one discriminator update; returns the named loss values."""
        autocast = torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)
        batch = to_device(batch, self.device)
        self.discriminators.requires_grad_(False)
        with autocast:
            losses = self.step(batch)
        total = sum(losses.values())
        if not self._check_finite(losses, total, epoch, iteration):
            return {}
        self.scheduler.step(epoch)
        self._optimize("model", self.optimizer, total)

        self.discriminators.requires_grad_(True)
        with autocast:
            for domain, real, generated in self.step.adversarial_pairs:
                losses[f"disc_{domain}"] = discriminator_loss(self.disc_by_domain[domain], real,
                                                              self.pools[domain].query(generated))
        disc_total = sum(v for k, v in losses.items() if k.startswith("disc_"))
        if self._check_finite(losses, disc_total, epoch, iteration):
            self._optimize("disc", self.disc_optimizer, disc_total)
        return {name: value.item() for name, value in losses.items()}

    def train_epoch(self, epoch: int) -> Dict[str, float]:
        """Train one epoch; returns the mean of every named loss."""
        self.model.train()
        self.discriminators.train()
        self.disc_scheduler.step(epoch)
        driver = self.loaders.real if self.loaders.real is not None else self.loaders.syn
        num_iters = len(driver)  # the P x K sampler draws the epoch's batches to count them
        sums, counts = defaultdict(float), defaultdict(int)
        bar = tqdm(self._batches(epoch), total=num_iters, desc=f"{self.cfg.MODE.STAGE} epoch {epoch + 1}",
                   disable=None, dynamic_ncols=True, leave=False)
        for iteration, batch in enumerate(bar):
            values = self.train_iteration(batch, epoch, iteration)
            for name, value in values.items():
                sums[name] += value
                counts[name] += 1
            if values:
                bar.set_postfix(loss=f"{sum(v for k, v in values.items() if not k.startswith('disc_')):.3f}")
            if (iteration + 1) % self.cfg.SOLVER.LOG_PERIOD == 0:
                logger.info("epoch %d iter %d/%d lr %.2e  %s", epoch + 1, iteration + 1, num_iters,
                            self.optimizer.param_groups[0]["lr"],
                            "  ".join(f"{k} {sums[k] / counts[k]:.4f}" for k in sums))
        return {name: sums[name] / counts[name] for name in sums}

    def validate(self) -> Dict:
        """Metrics of the stage's own test set (clear, hazy and fused paths)."""
        test = self.cfg.TEST
        metrics = inference_on_dataset(self.model, self.test_loader, self.num_query, self.device, self.amp_dtype,
                                       test.DISTANCE, test.RERANK, (test.RERANK_K1, test.RERANK_K2,
                                                                    test.RERANK_LAMBDA))
        logger.info("validation on %s:\n%s", STAGE_TEST_SET[self.cfg.MODE.STAGE], format_metrics(metrics))
        return metrics

    def train(self) -> None:
        """Run the remaining epochs, validating every ``SOLVER.EVAL_PERIOD`` and saving every epoch."""
        cfg = self.cfg
        path, _, name = cfg.SOLVER.BEST_METRIC.partition("/")
        logger.info("training %s for epochs %d..%d", cfg.MODE.STAGE, self.start_epoch + 1, cfg.SOLVER.MAX_EPOCHS)
        for epoch in range(self.start_epoch, cfg.SOLVER.MAX_EPOCHS):
            start = time.perf_counter()
            losses = self.train_epoch(epoch)
            seconds = time.perf_counter() - start
            logger.info("epoch %d/%d done in %.1f s  %s", epoch + 1, cfg.SOLVER.MAX_EPOCHS, seconds,
                        "  ".join(f"{k} {v:.4f}" for k, v in losses.items()))
            last = epoch + 1 == cfg.SOLVER.MAX_EPOCHS
            period = cfg.SOLVER.EVAL_PERIOD
            metrics = self.validate() if last or (period and (epoch + 1) % period == 0) else {}
            if metrics and metrics[path][name] > self.best_score:
                self.best_score, self.best_epoch = metrics[path][name], epoch + 1
            self.history.append({"epoch": epoch + 1, "seconds": seconds, "losses": losses, "metrics": metrics})
            self.save(epoch + 1, metrics)
            write_json(self.output_dir / "history.json", {"stage": cfg.MODE.STAGE, "epochs": self.history})
            plot_losses(self.history, self.output_dir / "losses.png",
                        f"{cfg.MODE.STAGE} losses / first-epoch value (log scale)")
        logger.info("done: best %s %.4f at epoch %d", cfg.SOLVER.BEST_METRIC, self.best_score, self.best_epoch)


def train_stage(cfg: CfgNode, args: argparse.Namespace) -> None:
    """Entry point of the three stage scripts: set up, build the trainer, (resume,) train."""
    last = Path(cfg.OUTPUT_DIR) / "checkpoint" / "last.pth"
    if last.exists() and not args.resume:  # checked before set-up rewrites config.yaml
        raise InputError(f"{last} exists: pass --resume to continue that run, or choose another OUTPUT_DIR")
    device = default_setup(cfg)
    startup_check(cfg)
    trainer = Trainer(cfg, device)
    if args.resume:
        trainer.resume()
    trainer.train()
