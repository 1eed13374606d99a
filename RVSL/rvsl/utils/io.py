"""File I/O: atomic writes (bytes, JSON, images), and the one safe loader of checkpoint files.

Writes go to a hidden temporary file beside the target, renamed into place once complete: a reader (or a
resumed run) therefore sees either the previous file or the finished new one, never half of one. Temporary
names start with "." and end with :data:`TMP_SUFFIX`, so dataset scanners
ignore them and a resumed build can remove them.
"""

import contextlib
import json
import os
import pickle
import uuid
from pathlib import Path
from typing import Any, Iterator, Sequence, Union

import cv2
import numpy as np
import torch

from .errors import InputError

TMP_SUFFIX = ".part"
PathLike = Union[str, "os.PathLike[str]"]


@contextlib.contextmanager
def atomic_path(path: PathLike, durable: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block ends without error, rename it onto ``path``.

    ``durable`` flushes the file to disk (fsync) before the rename, for checkpoints. On any error,
    or a KeyboardInterrupt, the temporary file is removed and ``path`` is left as it was; an OSError
    (a full disk, a lost mount) becomes an :class:`InputError` naming the file. The rename gives ``path``
    a new file, so a hard link to the previous one (``best.pth`` and ``last.pth``) keeps its content.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}{TMP_SUFFIX}")
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # created with the process umask
        yield tmp
        if durable:
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise InputError(f"cannot write {path.name} in {path.parent} ({exc.strerror or exc}); "
                             f"the previous {path.name} there, if any, is unchanged") from exc
        raise


def write_bytes_atomic(path: PathLike, data: bytes, durable: bool = False) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path, durable) as tmp:
        tmp.write_bytes(data)


def encode_image(image_bgr: np.ndarray, ext: str, params: Sequence[int] = ()) -> bytes:
    """A uint8 BGR image encoded as ``ext`` (".jpg", ".png", ...) with OpenCV ``params``; same pixels, same bytes."""
    ok, buffer = cv2.imencode(ext.lower(), image_bgr, list(params))
    if not ok:
        raise InputError(f"cannot encode an image as '{ext}'")
    return buffer.tobytes()


def write_image(path: PathLike, image_bgr: np.ndarray, params: Sequence[int] = ()) -> Path:
    """Write a uint8 BGR image atomically, encoded by the suffix of ``path`` (PNG when it has none)."""
    path = Path(path)
    try:
        data = encode_image(image_bgr, path.suffix or ".png", params)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from exc
    write_bytes_atomic(path, data)
    return path


def write_json(path: PathLike, data: Any) -> None:
    """Write ``data`` as indented, key-sorted JSON atomically."""
    write_bytes_atomic(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8"))


def safe_load(path: str, key: str) -> Any:
    """``torch.load`` on the CPU with ``weights_only=True``: tensors and plain data only, never code.

    ``key`` names the config key or option that gave ``path``, for the error message. This is the
    project's one way to read a checkpoint or state-dict file.
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
