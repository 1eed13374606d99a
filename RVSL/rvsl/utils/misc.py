"""Seeding, device selection, mixed-precision dtype and moving batches to the device."""

import logging
import os
import random
from typing import Any, Optional

import numpy as np
import torch

from .errors import InputError

logger = logging.getLogger(__name__)


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed python, numpy and torch (CPU and CUDA); optionally force deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    else:
        torch.backends.cudnn.benchmark = True


def resolve_device(name: str) -> torch.device:
    """Turn ``MODEL.DEVICE`` into a device: ``auto`` picks CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise InputError(f"MODEL.DEVICE: '{name}' is not a device (use auto, cpu, cuda or cuda:N)") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"MODEL.DEVICE is '{name}' but CUDA is not available on this machine (use auto or cpu)")
    return device


AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def amp_dtype(amp: str, device: torch.device) -> Optional[torch.dtype]:
    """The autocast dtype of ``SOLVER.AMP`` on CUDA ("auto": bf16 where supported, else fp16); None elsewhere."""
    if device.type != "cuda":
        return None
    if amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16
    return AMP_DTYPES.get(amp)


def autocast(device: torch.device, dtype: Optional[torch.dtype]) -> torch.autocast:
    """Mixed precision with ``dtype`` on CUDA; a disabled context on other devices or when ``dtype`` is None."""
    enabled = dtype is not None and device.type == "cuda"
    return torch.autocast(device.type, dtype=dtype if enabled else None, enabled=enabled)


def channels_last(enabled: bool, device: torch.device, *modules: torch.nn.Module) -> bool:
    """Lay ``modules`` out channels-last (NHWC) when ``enabled`` and ``device`` is CUDA; returns whether it did."""
    if not (enabled and device.type == "cuda"):
        return False
    for module in modules:
        module.to(memory_format=torch.channels_last)
    return True


def to_device(batch: Any, device: torch.device, channels_last: bool = False) -> Any:
    """Move every tensor of a (nested) batch dict to ``device``; uint8 images become float in [0, 1] there.

    Images travel from the loader as uint8 (a quarter of the bytes) and are scaled on the device;
    with ``channels_last`` 4-D image batches are laid out NHWC for the channels-last networks.
    """
    if isinstance(batch, dict):
        return {key: to_device(value, device, channels_last) for key, value in batch.items()}
    if not isinstance(batch, torch.Tensor):
        return batch
    tensor = batch.to(device, non_blocking=True)
    if tensor.dtype == torch.uint8:
        tensor = tensor.float().div_(255.0)
    if channels_last and tensor.dim() == 4:
        tensor = tensor.contiguous(memory_format=torch.channels_last)
    return tensor
