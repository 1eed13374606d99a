"""One run per output folder: an OS lock on ``OUTPUT_DIR/.lock``, held while the process lives.

``fcntl.flock`` locks belong to the open file, so the operating system releases them when the process
ends in any way (exit, crash, SIGKILL): a run that died never blocks the next one, and no stale-lock
clean-up exists. The file holds the holder's pid, host and command line, for the message a second run
gets. On a platform without ``fcntl`` (Windows) no lock is taken.
"""

import datetime
import logging
import os
import socket
import sys
from pathlib import Path
from typing import Dict, IO

from .errors import InputError

try:
    import fcntl
except ImportError:  # not POSIX
    fcntl = None

logger = logging.getLogger(__name__)

LOCK_NAME = ".lock"
_HELD: Dict[Path, IO[str]] = {}  # folder -> the open lock file of this process (kept open: the lock lives with it)


def lock_output_dir(folder: Path) -> None:
    """Take the lock of ``folder`` (an existing folder) until :func:`unlock_all` or the process ends, or raise
    :class:`InputError` naming the folder and the run that holds it. Taking it again in this process is a no-op."""
    folder = Path(folder).resolve()
    if fcntl is None or folder in _HELD:
        return
    path = folder / LOCK_NAME
    handle = open(path, "a+", encoding="utf-8")  # never truncated before the lock is ours
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "a process that has not written its name yet"
        handle.close()
        raise InputError(f"OUTPUT_DIR {folder} is in use by another run ({holder}); wait for it to end, "
                         "or choose another OUTPUT_DIR") from None
    handle.seek(0)
    handle.truncate()
    started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    handle.write(f"pid {os.getpid()} on {socket.gethostname()}, since {started}: {' '.join(sys.argv)}\n")
    handle.flush()
    _HELD[folder] = handle
    logger.debug("locked %s", path)


def unlock_all() -> None:
    """Release every lock this process holds (the end of a command run in-process)."""
    while _HELD:
        _, handle = _HELD.popitem()
        handle.close()  # closing the file drops its flock
