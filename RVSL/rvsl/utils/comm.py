"""The process group of a ``torchrun`` launch: joining it, rank queries and the few collectives RVSL uses.

``torchrun`` starts one process per GPU and sets RANK, WORLD_SIZE and LOCAL_RANK (plus the rendezvous
address) in each one's environment; :func:`init_process_group` joins that group. Every helper here
also works in a plain single process, where no group exists: ranks are 0, the world size is 1 and
the collectives return their input, so callers never branch on how they were launched.
"""

import os
from typing import Any, List, Optional

import torch
import torch.distributed as dist
from torch import nn

from .errors import InputError


def launched_world_size() -> int:
    """The number of processes ``torchrun`` started (its WORLD_SIZE; 1 when the variable is unset)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def get_world_size() -> int:
    """Processes in the group (1 without one)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def get_rank() -> int:
    """This process's rank in the group (0 without one)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def get_local_rank() -> int:
    """This process's rank on its machine (torchrun's LOCAL_RANK; 0 when unset)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main_process() -> bool:
    """Whether this is rank 0, the process that logs and writes files."""
    return get_rank() == 0


def process_device(device: torch.device) -> torch.device:
    """Under torchrun, a CUDA device without an index (``MODEL.DEVICE`` auto or cuda) becomes this process's
    GPU, ``cuda:LOCAL_RANK``; an explicit index is refused, since every process would share that GPU."""
    if launched_world_size() <= 1 or device.type != "cuda":
        return device
    if device.index is not None:
        raise InputError(f"MODEL.DEVICE is '{device}', but torchrun starts {launched_world_size()} processes that "
                         "would all use that GPU; use auto or cuda (each process takes cuda:LOCAL_RANK)")
    return torch.device("cuda", get_local_rank())


def init_process_group(device: torch.device) -> None:
    """Join torchrun's process group when it started more than one process: NCCL when ``device`` is a GPU
    (made this process's current device), gloo on the CPU. Does nothing in a single process."""
    world_size = launched_world_size()
    if world_size <= 1 or dist.is_initialized():
        return
    if not dist.is_available():
        raise InputError(f"WORLD_SIZE is {world_size} but this PyTorch build has no torch.distributed")
    if device.type == "cuda":
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
    else:
        dist.init_process_group("gloo")


def destroy_process_group() -> None:
    """Leave the process group, if this process joined one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait until every process gets here (nothing to wait for in a single process)."""
    if get_world_size() > 1:
        dist.barrier()


def gather(obj: Any, dst: int = 0) -> Optional[List[Any]]:
    """Every process's picklable ``obj``, in rank order, on rank ``dst`` (None on the others); ``[obj]`` alone.

    Tensors in ``obj`` should be on the CPU: a CUDA tensor would be unpickled onto the sender's GPU.
    """
    if get_world_size() == 1:
        return [obj]
    received = [None] * get_world_size() if get_rank() == dst else None
    dist.gather_object(obj, received, dst=dst)
    return received


def broadcast(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s picklable ``obj`` on every process (the others' ``obj`` is ignored)."""
    if get_world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_true(flag: torch.Tensor) -> bool:
    """Whether the boolean ``flag`` is true on every process (one all-reduce; reading it waits for the device)."""
    if get_world_size() == 1:
        return bool(flag)
    value = flag.detach().reshape(()).to(torch.int32)
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return bool(value)


def broadcast_buffers(module: nn.Module, src: int = 0) -> None:
    """Copy rank ``src``'s buffers of ``module`` (BatchNorm running statistics) to every process."""
    if get_world_size() == 1:
        return
    for buffer in module.buffers():
        dist.broadcast(buffer, src=src)
