"""The precision rule of every loss, distance and prior: computed in float32 (at least) whatever the input dtype.

Mixed precision (autocast) is for the networks only. A loss decorated with :func:`full_precision` runs
with autocast off on the devices of its tensor arguments, and its float16/bfloat16 tensor arguments are
cast to float32 first (float32 and float64 inputs are used as they are), so a bf16 generator output or a
matrix product inside the loss never carries half-precision rounding into the loss value.
"""

import functools
from contextlib import ExitStack
from typing import Any, Callable, Set, TypeVar

import torch

F = TypeVar("F", bound=Callable[..., Any])
_HALF = (torch.float16, torch.bfloat16)


def _widen(value: Any, devices: Set[str]) -> Any:
    """``value`` with half-precision tensors (also inside tuples, e.g. a ReIDOutput) cast to float32."""
    if isinstance(value, torch.Tensor):
        devices.add(value.device.type)
        return value.float() if value.dtype in _HALF else value
    if isinstance(value, tuple):
        items = [_widen(item, devices) for item in value]
        return type(value)(*items) if hasattr(value, "_fields") else tuple(items)
    return value


def full_precision(fn: F) -> F:
    """Decorator: run ``fn`` with autocast disabled and its half-precision tensor arguments cast to float32."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        devices: Set[str] = set()
        args = tuple(_widen(a, devices) for a in args)
        kwargs = {k: _widen(v, devices) for k, v in kwargs.items()}
        with ExitStack() as stack:
            for device in sorted(devices):
                stack.enter_context(torch.autocast(device, enabled=False))
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
