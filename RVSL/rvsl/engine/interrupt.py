"""Stopping a run cleanly on SIGTERM (what a scheduler sends before it kills) or SIGINT (Ctrl-C).

The signal handler only sets a flag. The trainer looks at it at every iteration boundary and after each
epoch's checkpoint (in a torchrun launch every process agrees, with one all-reduce, so all stop at the same
iteration), and stops there by raising :class:`Interrupted`: nothing is written on the way out, so the last
complete checkpoint, written at the end of an epoch, stays as it was and ``--resume`` continues from it
exactly (the interrupted epoch is trained again from its start). A second signal stops at once with
KeyboardInterrupt; an atomic write under way still removes its temporary file.
"""

import contextlib
import logging
import shlex
import signal
import sys
import threading
from pathlib import Path
from typing import Iterator, Optional

import torch

from ..utils import comm

logger = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Interrupted(Exception):
    """The run stopped on a signal at an iteration boundary; ``exit_code`` is 128 + the signal number."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.exit_code = 128 + int(signum)


def resume_command(argv: Optional[list] = None) -> str:
    """The command line of this process (``sys.argv``) with ``--resume`` after the script, for the user to rerun."""
    argv = list(sys.argv if argv is None else argv)
    if "--resume" not in argv:
        argv.insert(1, "--resume")
    return "python " + shlex.join(argv)


class StopFlag:
    """Set by SIGTERM / SIGINT while :meth:`installed`; :meth:`requested` agrees on it across processes."""

    def __init__(self, device: torch.device):
        self.device = device
        self.signum: Optional[int] = None

    def _handle(self, signum: int, frame) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt(f"second {signal.Signals(signum).name}: stopping at once")
        self.signum = signum

    @contextlib.contextmanager
    def installed(self) -> Iterator["StopFlag"]:
        """Catch the stop signals inside the block (the previous handlers come back after it); a no-op
        outside the main thread, where Python cannot install signal handlers."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {signum: signal.signal(signum, self._handle) for signum in STOP_SIGNALS}
        try:
            yield self
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def requested(self) -> bool:
        """Whether a stop signal reached this process or, under torchrun, any process (one all-reduce there)."""
        if comm.get_world_size() == 1:
            return self.signum is not None
        go_on = comm.all_true(torch.tensor(self.signum is None, device=self.device))
        if not go_on and self.signum is None:
            self.signum = signal.SIGTERM  # asked on another process
        return not go_on

    def interrupted(self, where: str, last: Path, epoch: int) -> Interrupted:
        """The :class:`Interrupted` to raise at ``where``, its message naming the checkpoint left (``last``, of
        epoch ``epoch``) and how to go on."""
        name = signal.Signals(self.signum).name
        if last.is_file():
            left = (f"the last complete checkpoint, {last} (epoch {epoch}), is intact; "
                    f"continue with: {resume_command()}")
        else:
            left = "no checkpoint was written yet: run the same command again to start over"
        return Interrupted(self.signum, f"{name}: stopped at {where}; {left}")
