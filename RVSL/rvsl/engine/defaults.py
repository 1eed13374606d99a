"""What every entry script shares: the argument parser, set-up, and error handling."""

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch
from tqdm.contrib.logging import logging_redirect_tqdm

from ..config import CfgNode, load_config
from ..utils import comm
from ..utils.errors import InputError, one_line
from ..utils.lock import lock_output_dir, unlock_all
from ..utils.logger import setup_logger
from ..utils.misc import resolve_device, seed_everything
from .guard import TrainingStopped
from .interrupt import Interrupted

logger = logging.getLogger("rvsl")


AddArguments = Callable[[argparse.ArgumentParser], None]


def default_argument_parser(description: str, training: bool = True,
                            add_arguments: Optional[AddArguments] = None) -> argparse.ArgumentParser:
    """The reference code's command line: ``-c CONFIG``, ``--resume`` / ``--auto-resume`` (trainers only), a
    script's own flags
    (``add_arguments(parser)``), then ``KEY VALUE`` pairs. An unknown flag is argparse's usage error (exit 2)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("-c", "--config_file", "--config-file", default="", metavar="FILE", help="YAML config file")
    if training:
        parser.add_argument("--resume", action="store_true",
                            help="continue from OUTPUT_DIR/checkpoint/last.pth with all training state")
        parser.add_argument("--auto-resume", action="store_true",
                            help="--resume when OUTPUT_DIR/checkpoint/last.pth exists, else start afresh (train.sh)")
    if add_arguments is not None:
        add_arguments(parser)
    parser.add_argument("opts", nargs=argparse.REMAINDER, default=[],
                        help="config overrides as KEY VALUE pairs, e.g. SOLVER.MAX_EPOCHS 10")
    return parser


def default_setup(cfg: CfgNode) -> torch.device:
    """Pick the device, join torchrun's process group if launched by it, create and lock OUTPUT_DIR (one run per
    folder), log to console and ``log.txt``, write ``config.yaml``, seed.

    Under torchrun only rank 0 writes (the folder, ``log.txt``, ``config.yaml``) and logs below WARNING;
    ``MODEL.DEVICE`` auto or cuda means each process's own GPU, ``cuda:LOCAL_RANK``. Every process gets
    the same seed, so the networks start alike and the random streams stay in step across processes.
    """
    device = comm.process_device(resolve_device(cfg.MODEL.DEVICE))
    comm.init_process_group(device)
    main = comm.is_main_process()
    output_dir = Path(cfg.OUTPUT_DIR)
    if main:
        try:
            output_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"OUTPUT_DIR {output_dir} cannot be made a folder ({exc.strerror})") from exc
        lock_output_dir(output_dir)  # before log.txt and config.yaml: a second run there writes nothing
    setup_logger(str(output_dir) if main else None, level=logging.INFO if main else logging.WARNING)
    logger.info("command: %s", " ".join(sys.argv))
    world_size = comm.get_world_size()
    processes = f"; {world_size} processes (torchrun): rank 0 logs and writes" if world_size > 1 else ""
    logger.info("torch %s, device %s, %d CPU threads%s", torch.__version__, device, torch.get_num_threads(), processes)
    if main:
        (output_dir / "config.yaml").write_text(cfg.dump(), encoding="utf-8")
        logger.info("merged config written to %s", output_dir / "config.yaml")
    seed_everything(cfg.MODE.SEED, cfg.MODE.DETERMINISTIC)
    return device


def launch(main: Callable[[CfgNode, argparse.Namespace], None], description: str,
           stage: Optional[str] = None, argv: Optional[Sequence[str]] = None,
           add_arguments: Optional[AddArguments] = None) -> int:
    """Parse the command line, load the config and run ``main(cfg, args)``.

    Bad input (:class:`InputError`, also one raised in a DataLoader worker) is reported in one line with exit
    status 2 and no traceback; a stopped run (:class:`TrainingStopped`) exits with 1, one stopped by SIGTERM /
    SIGINT (:class:`Interrupted`) with 143 / 130. Set ``RVSL_DEBUG=1`` for tracebacks.
    ``add_arguments(parser)`` adds a script's own flags (``--weight``, ``--input`` ...).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    args = default_argument_parser(description, stage is not None, add_arguments).parse_args(argv)
    setup_logger()  # console only until default_setup adds OUTPUT_DIR/log.txt
    try:
        cfg = load_config(args.config_file or None, args.opts, stage=stage)
        with logging_redirect_tqdm(loggers=[logger]):
            main(cfg, args)
    except (InputError, TrainingStopped) as exc:
        if os.environ.get("RVSL_DEBUG"):
            raise
        logger.error("error: %s", one_line(exc))
        return 2 if isinstance(exc, InputError) else 1
    except Interrupted as exc:
        logger.warning("%s", exc)
        return exc.exit_code
    finally:
        comm.destroy_process_group()
        unlock_all()
    return 0
