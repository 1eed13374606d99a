"""The training engine, stage steps, checkpoints, and the entry-point helpers.

The names are loaded on first use, so ``from rvsl.engine import launch`` (every command's entry point)
does not import the trainer, the data pipeline or the evaluators.
"""

import importlib
from typing import Any

_HOME = {"Trainer": "trainer", "train_stage": "trainer", "run_inference": "inference", "launch": "defaults",
         "default_argument_parser": "defaults", "default_setup": "defaults", "TrainingStopped": "guard"}
__all__ = list(_HOME)


def __getattr__(name: str) -> Any:
    """Import the submodule that defines ``name`` on first access (PEP 562)."""
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
