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
    """The autocast dtype of ``SOLVER.AMP`` ("off", "bf16", "fp16") on CUDA; None (full precision) elsewhere."""
    return AMP_DTYPES.get(amp) if device.type == "cuda" else None


def autocast(device: torch.device, dtype: Optional[torch.dtype]) -> torch.autocast:
    """Mixed precision with ``dtype`` on CUDA; a disabled context on other devices or when ``dtype`` is None."""
    enabled = dtype is not None and device.type == "cuda"
    return torch.autocast(device.type, dtype=dtype if enabled else None, enabled=enabled)


def to_device(batch: Any, device: torch.device) -> Any:
    """Move every tensor of a (nested) batch dict to ``device``."""
    if isinstance(batch, dict):
        return {key: to_device(value, device) for key, value in batch.items()}
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    return batch
