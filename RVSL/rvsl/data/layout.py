"""The FVRID folder layout: one table of the twelve folders, and everything derived from it.

Each :class:`LayoutFolder` row names a ``DATASETS.*_PATH`` config key, its default folder under
``DATASETS.DATA_PATH``, its domain (``syn``, ``real-clear``, ``real-hazy``), split (``train``,
``query``, ``gallery``), condition (``clear``, ``hazy``) and whether its file names carry labels.
The real training folders are unlabelled: their file names are never parsed.
"""

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from ..utils.errors import InputError

SYN, REAL_CLEAR, REAL_HAZY = "syn", "real-clear", "real-hazy"
DOMAINS = (SYN, REAL_CLEAR, REAL_HAZY)
SPLITS = ("train", "query", "gallery")
CONDITIONS = ("clear", "hazy")


@dataclass(frozen=True)
class LayoutFolder:
    """One folder of the layout: config key, default relative folder, domain, split, condition, labels."""

    key: str
    rel: str
    domain: str
    split: str
    condition: str
    labelled: bool


def _row(key: str, rel: str, domain: str, split: str, condition: str) -> LayoutFolder:
    """A table row; only the real training folders are unlabelled."""
    return LayoutFolder(key, rel, domain, split, condition, labelled=domain == SYN or split != "train")


FOLDERS: Tuple[LayoutFolder, ...] = (
    _row("SYN_TRAIN_CLEAR_PATH", "FVRID_syn/train_clear", SYN, "train", "clear"),
    _row("SYN_TRAIN_FOGGY_PATH", "FVRID_syn/train_foggy", SYN, "train", "hazy"),
    _row("SYN_QUERY_CLEAR_PATH", "FVRID_syn/query_clear", SYN, "query", "clear"),
    _row("SYN_QUERY_FOGGY_PATH", "FVRID_syn/query_foggy", SYN, "query", "hazy"),
    _row("SYN_GALLERY_CLEAR_PATH", "FVRID_syn/gallery_clear", SYN, "gallery", "clear"),
    _row("SYN_GALLERY_FOGGY_PATH", "FVRID_syn/gallery_foggy", SYN, "gallery", "hazy"),
    _row("REAL_TRAIN_CLEAR_PATH", "FVRID_clear/train_clear", REAL_CLEAR, "train", "clear"),
    _row("REAL_QUERY_CLEAR_PATH", "FVRID_clear/query_clear", REAL_CLEAR, "query", "clear"),
    _row("REAL_GALLERY_CLEAR_PATH", "FVRID_clear/gallery_clear", REAL_CLEAR, "gallery", "clear"),
    _row("REAL_TRAIN_FOGGY_PATH", "FVRID_real/train_foggy", REAL_HAZY, "train", "hazy"),
    _row("REAL_QUERY_FOGGY_PATH", "FVRID_real/query_foggy", REAL_HAZY, "query", "hazy"),
    _row("REAL_GALLERY_FOGGY_PATH", "FVRID_real/gallery_foggy", REAL_HAZY, "gallery", "hazy"),
)
BY_KEY: Dict[str, LayoutFolder] = {f.key: f for f in FOLDERS}

# Test sets by TEST.DATA name: their domain; SYN is evaluated on its hazy images.
TEST_SET_DOMAIN = {"SYN": SYN, "REAL_CLEAR": REAL_CLEAR, "REAL_FOGGY": REAL_HAZY}
# The real (unlabelled) domain each training stage adds to the synthetic pairs; None in stage 1.
STAGE_REAL_DOMAIN: Dict[str, Optional[str]] = {"STAGE1": None, "STAGE2": REAL_CLEAR, "STAGE3": REAL_HAZY}


def find(domain: str, split: str, condition: Optional[str] = None) -> LayoutFolder:
    """The folder of ``domain`` and ``split`` (and ``condition`` where the domain has both)."""
    for folder in FOLDERS:
        if folder.domain == domain and folder.split == split and condition in (None, folder.condition):
            return folder
    raise InputError(f"no layout folder for domain '{domain}', split '{split}', condition '{condition}'")


def twin(folder: LayoutFolder) -> Optional[LayoutFolder]:
    """The clear/hazy twin folder of a synthetic folder (same split); None for a real folder."""
    if folder.domain != SYN:
        return None
    return find(SYN, folder.split, "hazy" if folder.condition == "clear" else "clear")


def eval_folders(domain: str) -> Tuple[LayoutFolder, LayoutFolder]:
    """``(query, gallery)`` folders evaluated for ``domain`` (the hazy ones for the synthetic domain)."""
    condition = "hazy" if domain == SYN else None
    return find(domain, "query", condition), find(domain, "gallery", condition)


def select(domains) -> Tuple[LayoutFolder, ...]:
    """The folders of ``domains``; an unknown domain is an :class:`InputError`."""
    unknown = set(domains) - set(DOMAINS)
    if unknown:
        raise InputError(f"unknown domain(s) {', '.join(sorted(unknown))}; expected {', '.join(DOMAINS)}")
    return tuple(f for f in FOLDERS if f.domain in set(domains))


def stage_domains(stage: str) -> Tuple[str, ...]:
    """Domains a training stage reads: the synthetic pairs, plus its real domain."""
    real = STAGE_REAL_DOMAIN.get(stage)
    return (SYN,) if real is None else (SYN, real)


# Derived tables other modules import (rvsl.data.build re-exports the first three).
REAL_TRAIN_KEY = {stage: (find(d, "train").key if d else None) for stage, d in STAGE_REAL_DOMAIN.items()}
STAGE_TEST_SET = {stage: next(name for name, d in TEST_SET_DOMAIN.items() if d == (real or SYN))
                  for stage, real in STAGE_REAL_DOMAIN.items()}
TEST_KEYS = {name: tuple(f.key for f in eval_folders(d)) for name, d in TEST_SET_DOMAIN.items()}
DEFAULT_PATHS = {f.key: f.rel for f in FOLDERS}
