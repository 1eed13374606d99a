"""Logging to console and file that does not tear tqdm progress bars."""

import logging
import sys
from pathlib import Path
from typing import Optional

from tqdm import tqdm

_FORMAT = "%(asctime)s %(name)s %(levelname)s: %(message)s"
_DATEFMT = "%m/%d %H:%M:%S"


class _TqdmHandler(logging.StreamHandler):
    """Writes records through ``tqdm.write`` so they appear above any active progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # logging must never raise
            self.handleError(record)


def setup_logger(output_dir: Optional[str] = None, name: str = "rvsl") -> logging.Logger:
    """Configure the ``rvsl`` logger: INFO to the console, and to ``output_dir/log.txt`` (appended)."""
    logger = logging.getLogger(name)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    formatter = logging.Formatter(_FORMAT, datefmt=_DATEFMT)
    console = _TqdmHandler()
    console.setFormatter(formatter)
    logger.addHandler(console)
    if output_dir:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(Path(output_dir) / "log.txt", mode="a", encoding="utf-8")
        file_handler.setFormatter(formatter)
        logger.addHandler(file_handler)
    return logger
