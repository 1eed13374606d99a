"""Fixtures shared by the test modules."""

import logging
import shutil
from pathlib import Path

import pytest

from helpers import make_tiny_fvrid, run_cli
from model_helpers import save_tiny_checkpoint


@pytest.fixture(scope="session")
def tiny_fvrid(tmp_path_factory) -> Path:
    """A minimal valid FVRID tree, written once per session (do not modify; copy it instead)."""
    root = tmp_path_factory.mktemp("tiny_fvrid")
    make_tiny_fvrid(root)
    return root


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """Path of a tiny stage-1 checkpoint (do not modify)."""
    return save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pth")


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory) -> Path:
    """Small demo data from the project's own generator, written once per session (do not modify; copy it)."""
    root = tmp_path_factory.mktemp("demo")
    result = run_cli(["Datasets/make_demo.py", "--out", str(root), "--seed", "0", "--scale", "0.2", "--size", "32"])
    assert result.returncode == 0, result.stderr
    return root


@pytest.fixture(scope="session")
def demo_images(demo_data, tmp_path_factory) -> Path:
    """A folder of demo images (real-hazy query set of the demo generator) under names that do not parse."""
    folder = tmp_path_factory.mktemp("user") / "my images"
    folder.mkdir()
    for i, src in enumerate(sorted((demo_data / "FVRID_real" / "query_foggy").glob("*.jpg"))):
        shutil.copy(src, folder / f"camera shot {i:02d}.jpg")
    return folder


@pytest.fixture(autouse=True)
def _propagate_rvsl_logs():
    """Let caplog see the ``rvsl`` logger's records (setup_logger turns propagation off)."""
    logger = logging.getLogger("rvsl")
    before = logger.propagate
    logger.propagate = True
    yield
    logger.propagate = before
