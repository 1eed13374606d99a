"""Checkpoints: one :class:`Checkpointer` that saves and restores a fixed set of named objects.

Like fast-reid's Checkpointer, the trainer names its checkpointable objects once (networks,
optimisers, schedulers, grad scalers, replay pools, hooks with state); saving and resuming both loop
over that mapping. Files are RVSL checkpoints, written and read by :mod:`rvsl.checkpoint` (atomically,
and with ``weights_only=True``).
"""

import os
import random
import shutil
from pathlib import Path
from typing import Any, Dict, Mapping

import numpy as np
import torch

from ..checkpoint import MODEL_KEY, Weights, write_checkpoint
from ..utils.errors import InputError
from ..utils.io import atomic_path


class Checkpointer:
    """Saves the given objects' states as an RVSL checkpoint (the ``model`` one as its model) plus the random
    states and plain data; resumes them all."""

    def __init__(self, save_dir: Path, checkpointables: Mapping[str, Any]):
        self.save_dir = Path(save_dir)
        self.checkpointables = dict(checkpointables)

    def save(self, name: str, **fields: Any) -> Path:
        """Write ``save_dir/name.pth`` atomically (:func:`rvsl.checkpoint.write_checkpoint`): the ``model`` object's
        state with ``fields`` (stage, epoch, config, metrics, num_classes), every other object's state, the random
        states."""
        states = {key: obj.state_dict() for key, obj in self.checkpointables.items()}
        return write_checkpoint(self.save_dir / f"{name}.pth", states.pop(MODEL_KEY), **fields, **states,
                                rng=rng_state())

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

    def restore(self, weights: Weights, source: str) -> None:
        """Restore every object and the random states from an RVSL checkpoint read from ``source``."""
        payload = weights.entries()
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
