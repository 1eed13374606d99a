"""Shared test helpers: tiny FVRID trees written image by image, and running the real command line."""

import os
import zlib
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterable, List, Sequence, Tuple

import cv2
import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
# The tiny CPU setting the tests train and build models with (each adds only what it needs besides).
TINY_CONFIG = ROOT / "configs" / "tiny.yml"

# The twelve folders of the FVRID layout by config key, spelled out as an independent expectation.
EXPECTED_FOLDERS = {
    "SYN_TRAIN_CLEAR_PATH": "FVRID_syn/train_clear", "SYN_TRAIN_FOGGY_PATH": "FVRID_syn/train_foggy",
    "SYN_QUERY_CLEAR_PATH": "FVRID_syn/query_clear", "SYN_QUERY_FOGGY_PATH": "FVRID_syn/query_foggy",
    "SYN_GALLERY_CLEAR_PATH": "FVRID_syn/gallery_clear", "SYN_GALLERY_FOGGY_PATH": "FVRID_syn/gallery_foggy",
    "REAL_TRAIN_CLEAR_PATH": "FVRID_clear/train_clear", "REAL_QUERY_CLEAR_PATH": "FVRID_clear/query_clear",
    "REAL_GALLERY_CLEAR_PATH": "FVRID_clear/gallery_clear", "REAL_TRAIN_FOGGY_PATH": "FVRID_real/train_foggy",
    "REAL_QUERY_FOGGY_PATH": "FVRID_real/query_foggy", "REAL_GALLERY_FOGGY_PATH": "FVRID_real/gallery_foggy",
}
# The optional labelled real-hazy dev split (query, gallery).
EXPECTED_DEV_FOLDERS = {"REAL_DEV_QUERY_FOGGY_PATH": "FVRID_real/dev_query_foggy",
                        "REAL_DEV_GALLERY_FOGGY_PATH": "FVRID_real/dev_gallery_foggy"}


def tiny_opts() -> List[str]:
    """configs/tiny.yml as command-line KEY VALUE pairs, to lay the tiny setting over another config file."""
    sections = yaml.safe_load(TINY_CONFIG.read_text(encoding="utf-8"))
    return [item for section, keys in sections.items() for key, value in keys.items()
            for item in (f"{section}.{key}", str(value))]


def write_image(path: Path, seed: int, size: int = 32) -> None:
    """A small random-colour JPEG; the seed picks the colours."""
    rng = np.random.default_rng(seed)
    image = (rng.random((size, size, 3)) * 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), image)


def names(pids: Iterable[int], cams: Sequence[int], per_cam: int = 1) -> List[str]:
    """VeRi-Wild style names for every identity, camera and instance."""
    return [f"{pid:05d}_c{cam:03d}_{pid * 100 + cam * 10 + k:06d}_{k}.jpg"
            for pid in pids for cam in cams for k in range(per_cam)]


def make_tiny_fvrid(root: Path, size: int = 32) -> Dict[str, List[str]]:
    """Write a minimal but valid FVRID tree (all twelve folders); returns file names per folder."""
    plan: Dict[Tuple[str, str], List[str]] = {}
    train, test = range(1, 7), range(100, 104)
    for split in ("train", "query", "gallery"):
        pids = train if split == "train" else test
        cams = [1, 2] if split != "query" else [3]
        file_names = names(pids, cams, per_cam=2 if split == "train" else 1)
        plan[("FVRID_syn", f"{split}_clear")] = file_names
        plan[("FVRID_syn", f"{split}_foggy")] = file_names
        plan[("FVRID_clear", f"{split}_clear")] = names([p + 1000 for p in pids], cams, 2 if split == "train" else 1)
        plan[("FVRID_real", f"{split}_foggy")] = names([p + 2000 for p in pids], cams, 2 if split == "train" else 1)
    for (top, sub), file_names in plan.items():
        for i, name in enumerate(file_names):
            write_image(root / top / sub / name, seed=zlib.crc32(f'{top}/{sub}/{i}'.encode()), size=size)
    return {f"{top}/{sub}": file_names for (top, sub), file_names in plan.items()}


def noise_jpeg(path: Path, seed: int, size: Tuple[int, int] = (24, 32)) -> None:
    """Write a small random JPEG (distinct content per seed) of ``size`` (H, W)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    assert cv2.imwrite(str(path), image)


def fvrid_name(pid: int, cam: int, frame: int) -> str:
    """FVRID file name ``PPPPP_cCCC_FFFFFF_0.jpg``."""
    return f"{pid:05d}_c{cam:03d}_{frame:06d}_0.jpg"


def run_cli(args: Sequence[str], timeout: int = 600, **kwargs) -> subprocess.CompletedProcess:
    """Run ``python ARGS`` from the repository root with the test's interpreter; capture the output."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("RVSL_DEBUG", None)
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout, **kwargs)


def run_script(script: Path, *args) -> subprocess.CompletedProcess:
    """Run a script (path) with arguments, as :func:`run_cli` does."""
    return run_cli([str(script), *map(str, args)], timeout=120)


def assert_cli_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    """Exit 2 with a one-line message holding ``needles`` and no traceback."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    line = [text for text in result.stderr.splitlines() if "error:" in text]
    assert len(line) == 1
    for needle in needles:
        assert needle in line[0], line[0]

