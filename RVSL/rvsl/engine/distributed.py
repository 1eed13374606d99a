"""The trainer's pieces for DistributedDataParallel (DDP) training under ``torchrun``.

A stage step calls the model's methods (``encode``, ``embed``, ``render_*``), never its ``forward``, and
DDP only prepares its gradient all-reduce inside its own ``forward``. So each update gets a small module
whose ``forward`` is the update's loss computation: :class:`StepModule` (the ReID network and generators;
it registers the model and not the discriminators, which the step only reads) and
:class:`DiscriminatorLoss` (the discriminators that the stage trains). In a distributed run each is
wrapped in DDP by :func:`wrap`; in a single process they run unwrapped, with the numerics of calling the
step directly.
"""

import logging
from contextlib import nullcontext
from typing import ContextManager, Dict, List, Mapping, Sequence

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from ..config import CfgNode
from ..losses import discriminator_loss
from ..modeling import ImagePool
from ..utils import comm
from ..utils.errors import InputError
from .guard import NonFiniteGuard
from .stages import AdversarialPair, StageStep, StepResult

logger = logging.getLogger(__name__)


class StepModule(nn.Module):
    """``forward(batch)`` runs the stage step: the ReID/generator losses of one update, under DDP's forward."""

    def __init__(self, model: nn.Module, step: StageStep):
        super().__init__()
        self.model = model  # its parameters are the ones DDP averages
        self.step = step  # a plain object: the discriminators it reads are not registered here

    def forward(self, batch: Dict) -> StepResult:
        """The step's result for ``batch``."""
        return self.step(batch)


class DiscriminatorLoss(nn.Module):
    """``forward(pairs)``: ``{"D_<domain>": LSGAN loss}`` of the discriminators on a step's adversarial pairs.

    Registers only the discriminators of ``domains`` (those the stage trains), so that DDP finds no
    unused parameter; the generated images go through each domain's replay pool first. With ``batched``
    (``MODEL.D_BATCHED_PASS``) each discriminator judges its real and generated images in one pass.
    """

    def __init__(self, discriminators: nn.Module, pools: Mapping[str, ImagePool], domains: Sequence[str],
                 batched: bool = False):
        super().__init__()
        for domain in domains:
            self.add_module(domain, discriminators[domain])
        self.pools = pools
        self.batched = batched

    def forward(self, pairs: List[AdversarialPair]) -> Dict[str, Tensor]:
        """The loss of each pair's discriminator on its real and (pooled) generated images."""
        return {f"D_{pair.domain}": discriminator_loss(self.get_submodule(pair.domain), pair.real,
                                                       self.pools[pair.domain].query(pair.generated), self.batched)
                for pair in pairs}


class GatheredPool:
    """The checkpoint state of one domain's replay pool in a run of several processes: every process's images.

    Each process keeps its own pool (of its own generated images). :meth:`gather`, called by every process
    at the end of each epoch before the checkpoint is written, collects the other processes' images on
    rank 0, whose :meth:`state_dict` then holds rank 0's pool plus ``other_ranks`` (rank 1, 2, ...); on
    resume each process restores its own. A state from a run with fewer processes (or from a checkpoint
    without ``other_ranks``) gives the processes it lacks rank 0's images, with a warning.
    """

    def __init__(self, pool: ImagePool):
        self.pool = pool
        self.other_ranks: List[List[Tensor]] = []

    def gather(self) -> None:
        """Collect every process's stored images on rank 0 (a collective: every process calls it)."""
        if comm.get_world_size() == 1:
            return
        states = comm.gather(self.pool.state_dict())
        self.other_ranks = [state["images"] for state in states[1:]] if states else []

    def state_dict(self) -> Dict:
        """This (rank 0's) pool's state plus the images of the other processes as last gathered."""
        return {**self.pool.state_dict(), "other_ranks": self.other_ranks}

    def load_state_dict(self, state: Dict) -> None:
        """Restore this process's own pool from :meth:`state_dict`."""
        rank, others = comm.get_rank(), list(state.get("other_ranks", []))
        if rank == 0:
            self.pool.load_state_dict(state)
            return
        if rank > len(others):
            logger.warning("replay pool: the checkpoint holds no pool of process %d (it holds %d); "
                           "restoring rank 0's", rank, len(others) + 1)
            self.pool.load_state_dict(state)
            return
        self.pool.load_state_dict({**state, "images": others[rank - 1]})


def wrap(module: nn.Module, device: torch.device) -> nn.Module:
    """``module`` in DistributedDataParallel when there are several processes; ``module`` itself otherwise.

    DDP copies rank 0's buffers (BatchNorm statistics) to every process before each forward; the trainer
    copies them once more after each epoch's last update (:func:`rvsl.utils.comm.broadcast_buffers`), so
    that validation and the checkpoint see one model on every process.
    """
    if comm.get_world_size() == 1:
        return module
    return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)


def accumulating(module: nn.Module, more_to_come: bool) -> ContextManager:
    """The context of one micro-batch's forward and backward under gradient accumulation: DDP's ``no_sync``
    while ``more_to_come`` (gradients are all-reduced once, in the update's last micro-batch)."""
    if more_to_come and isinstance(module, DistributedDataParallel):
        return module.no_sync()
    return nullcontext()


def convert_sync_batchnorm(cfg: CfgNode, model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` with SyncBatchNorm layers when ``MODEL.SYNC_BN`` is on and several processes train (CUDA only).

    The BatchNorm layers are replaced in place, keeping their parameters, so optimisers built before
    still hold them; the returned module is ``model`` (RVSL's top module is not a BatchNorm layer).
    """
    if not cfg.MODEL.SYNC_BN:
        return model
    if comm.get_world_size() == 1:
        logger.info("MODEL.SYNC_BN: a single process has nothing to synchronise; plain BatchNorm")
        return model
    if device.type != "cuda":
        raise InputError(f"MODEL.SYNC_BN needs CUDA devices (torch.nn.SyncBatchNorm runs on GPUs only); "
                         f"this run is on {device}: set MODEL.SYNC_BN False")
    synced = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    logger.info("MODEL.SYNC_BN: BatchNorm statistics over the global batch of %d processes", comm.get_world_size())
    return synced


class DistributedGuard(NonFiniteGuard):
    """The non-finite guard of a multi-process run: an update is skipped on every process when its loss is
    non-finite on any (one all-reduce per check), so that no process waits alone in a gradient all-reduce."""

    def check(self, update: str, losses: Dict[str, Tensor], total: Tensor, where: str) -> bool:
        """As :meth:`NonFiniteGuard.check`, with the finiteness of ``total`` agreed by all processes."""
        if self.limit == 0:  # the check is off (SOLVER.MAX_NONFINITE 0): no all-reduce either
            return True
        finite_here = torch.isfinite(total)
        if comm.all_true(finite_here) or not bool(finite_here):
            return super().check(update, losses, total, where)
        nan = torch.full_like(total, float("nan"))  # finite here but not on another process: skip here too
        return super().check(update, {**losses, "(on another process)": nan}, nan, where)


def build_guard(cfg: CfgNode) -> NonFiniteGuard:
    """The non-finite guard of ``SOLVER.MAX_NONFINITE``: agreed across processes in a distributed run."""
    guard = DistributedGuard if comm.get_world_size() > 1 else NonFiniteGuard
    return guard(cfg.SOLVER.MAX_NONFINITE)
