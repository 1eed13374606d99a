"""Atomic file writes: a hidden temporary file beside the target, renamed into place once complete.

A reader (or a resumed run) therefore sees either the previous file or the finished new one, never
half of one. Temporary names start with "." and end with :data:`TMP_SUFFIX`, so dataset scanners
ignore them and a resumed build can remove them.
"""

import contextlib
import json
import os
import uuid
from pathlib import Path
from typing import Any, Iterator, Union

TMP_SUFFIX = ".part"
PathLike = Union[str, "os.PathLike[str]"]


@contextlib.contextmanager
def atomic_path(path: PathLike, durable: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block ends without error, rename it onto ``path``.

    ``durable`` flushes the file to disk (fsync) before the rename, for checkpoints. On any error,
    or a KeyboardInterrupt, the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}{TMP_SUFFIX}")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # created with the process umask
    try:
        yield tmp
        if durable:
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_bytes_atomic(path: PathLike, data: bytes, durable: bool = False) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path, durable) as tmp:
        tmp.write_bytes(data)


def write_json(path: PathLike, data: Any) -> None:
    """Write ``data`` as indented, key-sorted JSON atomically."""
    write_bytes_atomic(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8"))
