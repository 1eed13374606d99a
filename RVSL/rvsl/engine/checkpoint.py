"""Checkpoints: atomic writes, safe loads (``weights_only=True``), and their validation."""

import os
import pickle
import random
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
import torch

from ..utils.errors import InputError

# Keys every RVSL checkpoint carries.
REQUIRED_KEYS = ("model", "stage", "epoch", "config", "metrics")


def save_checkpoint(payload: Dict[str, Any], path: Path) -> None:
    """Write ``payload`` to a temporary file beside ``path``, then rename it into place.

    A kill during the save leaves the previous file at ``path`` intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(payload, tmp)
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def safe_load(path: str, key: str) -> Any:
    """``torch.load`` on the CPU with ``weights_only=True``: tensors and plain data only, never code.

    ``key`` names the config key or option that gave ``path``, for the error message.
    """
    if not path:
        raise InputError(f"{key} is empty: name a checkpoint file")
    if not Path(path).is_file():
        raise InputError(f"{key}: file not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else "no detail"
        raise InputError(f"{key}: {path} is not a loadable checkpoint ({type(exc).__name__}: {detail})") from exc


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
