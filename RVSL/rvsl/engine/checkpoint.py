"""Checkpoints: one :class:`Checkpointer` that saves and restores a fixed set of named objects.

Like fast-reid's Checkpointer, the trainer names its checkpointable objects once (networks,
optimisers, schedulers, grad scalers, replay pools, hooks with state); saving and resuming both loop
over that mapping. Files are written atomically and read with ``weights_only=True``.
"""

import os
import random
import shutil
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

import numpy as np
import torch

from ..utils.errors import InputError
from ..utils.io import atomic_path, safe_load

# Keys every RVSL checkpoint carries besides the checkpointables' states.
REQUIRED_KEYS = ("model", "stage", "epoch", "config", "metrics")


class Checkpointer:
    """Saves ``{name: obj.state_dict()}`` of the given objects plus extra plain data; resumes them all."""

    def __init__(self, save_dir: Path, checkpointables: Mapping[str, Any]):
        self.save_dir = Path(save_dir)
        self.checkpointables = dict(checkpointables)

    def save(self, name: str, **extra: Any) -> Path:
        """Write ``save_dir/name.pth`` atomically: every object's state, the random states and ``extra``."""
        payload = {key: obj.state_dict() for key, obj in self.checkpointables.items()}
        payload.update(extra, rng=rng_state())
        path = self.save_dir / f"{name}.pth"
        save_checkpoint(payload, path)
        return path

    def link(self, source: str, name: str) -> Path:
        """Make ``save_dir/name.pth`` the same file as ``save_dir/source.pth`` (an atomic hard link, else a copy)."""
        path = self.save_dir / f"{name}.pth"
        with atomic_path(path) as tmp:
            tmp.unlink()
            try:
                os.link(self.save_dir / f"{source}.pth", tmp)
            except OSError:  # a file system without hard links: copy instead
                shutil.copyfile(self.save_dir / f"{source}.pth", tmp)
        return path

    def restore(self, payload: Dict[str, Any], source: str) -> None:
        """Restore every object and the random states from a loaded checkpoint ``payload`` (read from ``source``)."""
        missing = [key for key in self.checkpointables if key not in payload]
        if missing:
            raise InputError(f"--resume: {source} lacks {', '.join(missing)}; it was not written by this trainer")
        for key, obj in self.checkpointables.items():
            try:
                obj.load_state_dict(payload[key])
            except (RuntimeError, ValueError, KeyError) as exc:
                detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise InputError(f"--resume: {source}: {key} does not fit this run ({detail})") from exc
        set_rng_state(payload["rng"])


def save_checkpoint(payload: Dict[str, Any], path: Path) -> None:
    """Write ``payload`` atomically and durably: a kill or a full disk during the save leaves the previous file
    intact (the latter an :class:`InputError` naming the folder)."""
    with atomic_path(path, durable=True) as tmp, open(tmp, "wb") as handle:
        torch.save(payload, handle)  # through a Python file: a failed write is an OSError with its errno


def load_checkpoint(path: str, key: str, stage: Optional[str] = None) -> Dict[str, Any]:
    """Load an RVSL checkpoint safely; :class:`InputError` names ``key`` and the file if it is not one.

    With ``stage`` given, a checkpoint of another stage is an error too.
    """
    payload = safe_load(path, key)
    if not is_rvsl_checkpoint(payload):
        missing = [k for k in REQUIRED_KEYS if not isinstance(payload, dict) or k not in payload]
        raise InputError(f"{key}: {path} is not an RVSL checkpoint (missing {', '.join(missing)}); "
                         f"expected a file written by the RVSL trainers")
    if stage is not None and payload["stage"] != stage:
        raise InputError(f"{key}: {path} is a {payload['stage']} checkpoint; expected {stage}")
    return payload


def is_rvsl_checkpoint(payload: Any) -> bool:
    """Whether a loaded object is an RVSL checkpoint (as opposed to a bare backbone state dict)."""
    return isinstance(payload, dict) and all(key in payload for key in REQUIRED_KEYS)


def rng_state() -> Dict[str, Any]:
    """The random states of python, numpy and torch (CPU and CUDA) as plain data and tensors."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    """Restore the states saved by :func:`rng_state`."""
    random.setstate(_as_tuple(state["python"]))
    np_state = state["numpy"]
    np.random.set_state((np_state["name"], np_state["keys"].numpy().astype(np.uint32), np_state["pos"],
                         np_state["has_gauss"], np_state["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(value: Any) -> Any:
    """Lists that went through serialisation back to the nested tuples ``random.setstate`` wants."""
    if isinstance(value, (list, tuple)):
        return tuple(_as_tuple(v) for v in value)
    return value
