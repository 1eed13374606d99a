"""The training engine, stage steps, checkpoints, and the entry-point helpers."""

from .defaults import default_argument_parser, default_setup, launch
from .guard import TrainingStopped
from .inference import run_inference
from .trainer import Trainer, train_stage

__all__ = ["Trainer", "train_stage", "run_inference", "launch", "default_argument_parser", "default_setup",
           "TrainingStopped"]
