"""Logging of the ``rvsl`` logger to the console and to ``OUTPUT_DIR/log.txt``.

Entry points wrap their work in ``tqdm.contrib.logging.logging_redirect_tqdm``, which routes the
console handler through ``tqdm.write`` so that log lines never tear a progress bar.
"""

import logging
import sys
from pathlib import Path
from typing import Optional

_FORMAT = "%(asctime)s %(name)s %(levelname)s: %(message)s"
_DATEFMT = "%m/%d %H:%M:%S"


def setup_logger(output_dir: Optional[str] = None, name: str = "rvsl", level: int = logging.INFO) -> logging.Logger:
    """``level`` and up to the console (added once) and to ``output_dir/log.txt`` (appended; replaces an old one)."""
    logger = logging.getLogger(name)
    logger.setLevel(level)
    logger.propagate = False
    formatter = logging.Formatter(_FORMAT, datefmt=_DATEFMT)
    if not logger.handlers:
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(formatter)
        logger.addHandler(console)
    if output_dir:
        for handler in [h for h in logger.handlers if isinstance(h, logging.FileHandler)]:
            logger.removeHandler(handler)
            handler.close()
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(Path(output_dir) / "log.txt", mode="a", encoding="utf-8")
        file_handler.setFormatter(formatter)
        logger.addHandler(file_handler)
    return logger
