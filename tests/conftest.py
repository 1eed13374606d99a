"""Fixtures shared by the test modules."""

import logging
from pathlib import Path

import pytest

from helpers import make_tiny_fvrid


@pytest.fixture(scope="session")
def tiny_fvrid(tmp_path_factory) -> Path:
    """A minimal valid FVRID tree, written once per session (do not modify; copy it instead)."""
    root = tmp_path_factory.mktemp("tiny_fvrid")
    make_tiny_fvrid(root)
    return root


@pytest.fixture(autouse=True)
def _propagate_rvsl_logs():
    """Let caplog see the ``rvsl`` logger's records (setup_logger turns propagation off)."""
    logger = logging.getLogger("rvsl")
    before = logger.propagate
    logger.propagate = True
    yield
    logger.propagate = before
