"""Optimisers and learning-rate schedules, built from the config out of ``torch.optim`` classes.

The ReID/generator rate is ``BASE_LR x warm-up x decay``: a linear warm-up (``LinearLR`` from
``WARMUP_FACTOR`` to 1 over ``WARMUP_LENGTH`` steps, stepped per iteration or per epoch as
``WARMUP_UNIT`` says) chained with a multi-step decay (``MultiStepLR``, gamma at each epoch of
``STEPS``). ``WARMUP_UNIT epoch`` reproduces the reference run, whose scheduler was stepped once per
epoch; ``SCHEDULE_OFFSET`` advances both by that many steps before the first epoch, as the reference's
trainers did once. The discriminators keep ``DISC_LR`` for the first half of the epochs, then decay linearly to
zero (CycleGAN). Every scheduler's state is plain data, so a resumed run continues them exactly.
"""

import warnings
from typing import Dict

import torch
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LinearLR, LRScheduler, MultiStepLR

from ..config import CfgNode


def build_optimizers(cfg: CfgNode, model: nn.Module, discriminators: nn.Module,
                     device: torch.device) -> Dict[str, Optimizer]:
    """Adam for the trainable RVSL parameters ("model") and for the discriminators ("disc"); fused on CUDA
    when ``SOLVER.FUSED_ADAM``."""
    fused = bool(cfg.SOLVER.FUSED_ADAM) and device.type == "cuda"
    return {
        "model": torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.SOLVER.BASE_LR,
                                  weight_decay=cfg.SOLVER.WEIGHT_DECAY, fused=fused),
        "disc": torch.optim.Adam(discriminators.parameters(), lr=cfg.SOLVER.DISC_LR,
                                 betas=tuple(cfg.SOLVER.DISC_BETAS), fused=fused),
    }


def disc_lr_factor(epoch: int, max_epochs: int) -> float:
    """Multiplier of the discriminators' rate during ``epoch`` (0-based): 1, then linear to 0 over the second half."""
    half = max_epochs // 2
    return 1.0 if epoch < half else (max_epochs - epoch) / (max_epochs - half)


def build_lr_schedulers(cfg: CfgNode, optimizers: Dict[str, Optimizer]) -> Dict[str, LRScheduler]:
    """``warmup`` and ``decay`` (chained on the model optimiser, both advanced by ``SOLVER.SCHEDULE_OFFSET``
    steps) and ``disc``; see the module docstring."""
    solver = cfg.SOLVER
    length = solver.WARMUP_LENGTH
    max_epochs = solver.MAX_EPOCHS
    schedulers = {
        "warmup": LinearLR(optimizers["model"], start_factor=solver.WARMUP_FACTOR if length else 1.0,
                           end_factor=1.0, total_iters=max(length, 1)),
        "decay": MultiStepLR(optimizers["model"], list(solver.STEPS), solver.GAMMA),
        "disc": LambdaLR(optimizers["disc"], lambda epoch: disc_lr_factor(epoch, max_epochs)),
    }
    with warnings.catch_warnings():  # stepped before any optimiser step on purpose, as the reference did
        warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step", category=UserWarning)
        for _ in range(solver.SCHEDULE_OFFSET):
            schedulers["warmup"].step()
            schedulers["decay"].step()
    return schedulers


def step_schedulers(schedulers: Dict[str, LRScheduler], warmup_unit: str, end_of_epoch: bool) -> None:
    """Advance the schedulers after an iteration (``end_of_epoch`` False) or after an epoch."""
    if end_of_epoch:
        schedulers["decay"].step()
        schedulers["disc"].step()
    if (warmup_unit == "epoch") == end_of_epoch:
        schedulers["warmup"].step()
