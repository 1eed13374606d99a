"""The build's records: ``manifest.csv`` (every output, its source, haze, depth and SHA-256) and the settings file."""

import csv
import hashlib
import io
import json
from pathlib import Path
from typing import Mapping, Sequence

from rvsl.utils.errors import InputError
from rvsl.utils.io import write_bytes_atomic, write_json

from ..imageio import JPEG_QUALITY, PNG_COMPRESSION

MANIFEST_NAME = "manifest.csv"
SETTINGS_NAME = "fvrid_build.json"
MANIFEST_COLUMNS = ("file", "kind", "index_line", "source", "clear_twin", "airlight", "beta", "seed", "depth",
                    "sha256")


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def write_manifest(path: Path, rows: Sequence[Mapping[str, str]]) -> None:
    """Write the manifest atomically, sorted by output file (so equal builds give equal manifests)."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(sorted(rows, key=lambda r: r["file"]))
    write_bytes_atomic(path, text.getvalue().encode())


def check_settings(out: Path, seed: int, depth_mode: str, disparity: bool) -> None:
    """Record the build settings in ``out``, or check that a resumed build uses the recorded ones."""
    recorded = {"seed": seed, "depth_mode": depth_mode, "disparity": disparity,
                "jpeg_quality": JPEG_QUALITY, "png_compression": PNG_COMPRESSION}
    path = out / SETTINGS_NAME
    if path.is_file():
        try:
            previous = json.loads(path.read_text())
        except ValueError as exc:
            raise InputError(f"{path} is not valid JSON ({exc}); delete it only if {out} holds no output") from exc
        if previous != recorded:
            diff = ", ".join(f"{k} {previous.get(k)!r} -> {v!r}" for k, v in recorded.items() if previous.get(k) != v)
            raise InputError(f"{out} was built with other settings ({diff}); resume with the same settings "
                             "or build into a new --out")
    else:
        write_json(path, recorded)
