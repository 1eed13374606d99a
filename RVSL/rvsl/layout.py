"""The FVRID folder layout: one table of the twelve folders (and two optional dev folders), and everything
derived from it.

Each :class:`LayoutFolder` row names a ``DATASETS.*_PATH`` config key, its default folder under
``DATASETS.DATA_PATH``, its domain (``syn``, ``real-clear``, ``real-hazy``), split (``train``,
``query``, ``gallery``, ``dev_query``, ``dev_gallery``), condition (``clear``, ``hazy``) and whether its
file names carry labels. The real training folders are unlabelled: their file names are never parsed.
The dev folders are an optional labelled real-hazy query/gallery whose identities are in neither the real
training nor the test folders: choices (settings, checkpoint criteria) are made on them, and the test
folders are read only to report. No training stage reads them.

This module imports nothing of rvsl, so the config defaults and the data package both build on it. Its
look-ups raise ``ValueError`` for a name outside the table: every name a user gives is checked before it
gets here (config choices, command-line choices, ``rvsl.data.build``), so such an error is a bug.
"""

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

SYN, REAL_CLEAR, REAL_HAZY = "syn", "real-clear", "real-hazy"
DOMAINS = (SYN, REAL_CLEAR, REAL_HAZY)
SPLITS = ("train", "query", "gallery", "dev_query", "dev_gallery")
DEV_SPLITS = ("dev_query", "dev_gallery")
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
    _row("REAL_DEV_QUERY_FOGGY_PATH", "FVRID_real/dev_query_foggy", REAL_HAZY, "dev_query", "hazy"),
    _row("REAL_DEV_GALLERY_FOGGY_PATH", "FVRID_real/dev_gallery_foggy", REAL_HAZY, "dev_gallery", "hazy"),
)
BY_KEY: Dict[str, LayoutFolder] = {f.key: f for f in FOLDERS}

# The optional folders: absent, they are not a problem; present, only evaluation reads them.
DEV_KEYS: Tuple[str, ...] = tuple(f.key for f in FOLDERS if f.split in DEV_SPLITS)
# Evaluation sets by TEST.DATA name (the one list of them): their domain and (query, gallery) splits;
# SYN is evaluated on its hazy images. REAL_FOGGY_DEV is the labelled dev split of the real hazy domain.
TEST_SETS: Dict[str, Tuple[str, str, str]] = {
    "SYN": (SYN, "query", "gallery"), "REAL_CLEAR": (REAL_CLEAR, "query", "gallery"),
    "REAL_FOGGY": (REAL_HAZY, "query", "gallery"), "REAL_FOGGY_DEV": (REAL_HAZY, "dev_query", "dev_gallery")}
# The real (unlabelled) domain each training stage adds to the synthetic pairs; None in stage 1.
STAGE_REAL_DOMAIN: Dict[str, Optional[str]] = {"STAGE1": None, "STAGE2": REAL_CLEAR, "STAGE3": REAL_HAZY}


def find(domain: str, split: str, condition: Optional[str] = None) -> LayoutFolder:
    """The folder of ``domain`` and ``split`` (and ``condition`` where the domain has both)."""
    for folder in FOLDERS:
        if folder.domain == domain and folder.split == split and condition in (None, folder.condition):
            return folder
    raise ValueError(f"no layout folder for domain '{domain}', split '{split}', condition '{condition}'")


def twin(folder: LayoutFolder) -> Optional[LayoutFolder]:
    """The clear/hazy twin folder of a synthetic folder (same split); None for a real folder."""
    if folder.domain != SYN:
        return None
    return find(SYN, folder.split, "hazy" if folder.condition == "clear" else "clear")


def eval_folders(test_set: str) -> Tuple[LayoutFolder, LayoutFolder]:
    """``(query, gallery)`` folders of the evaluation set ``test_set`` (the hazy ones for SYN)."""
    if test_set not in TEST_SETS:
        raise ValueError(f"TEST.DATA is {test_set!r}; expected one of {', '.join(TEST_SETS)}")
    domain, query, gallery = TEST_SETS[test_set]
    condition = "hazy" if domain == SYN else None
    return find(domain, query, condition), find(domain, gallery, condition)


def select(domains) -> Tuple[LayoutFolder, ...]:
    """The folders of ``domains``; an unknown domain is a ``ValueError``."""
    unknown = set(domains) - set(DOMAINS)
    if unknown:
        raise ValueError(f"unknown domain(s) {', '.join(sorted(unknown))}; expected {', '.join(DOMAINS)}")
    return tuple(f for f in FOLDERS if f.domain in set(domains))


def training_folders(domains) -> Tuple[LayoutFolder, ...]:
    """The folders of ``domains`` a training stage may read: all but the dev folders."""
    return tuple(f for f in select(domains) if f.split not in DEV_SPLITS)


def stage_domains(stage: str) -> Tuple[str, ...]:
    """Domains a training stage reads: the synthetic pairs, plus its real domain."""
    real = STAGE_REAL_DOMAIN.get(stage)
    return (SYN,) if real is None else (SYN, real)


# Derived tables other modules import (rvsl.data.build re-exports the first three).
REAL_TRAIN_KEY = {stage: (find(d, "train").key if d else None) for stage, d in STAGE_REAL_DOMAIN.items()}
STAGE_TEST_SET = {stage: next(name for name, (d, query, _) in TEST_SETS.items() if d == (real or SYN)
                                and query == "query") for stage, real in STAGE_REAL_DOMAIN.items()}
TEST_KEYS = {name: tuple(f.key for f in eval_folders(name)) for name in TEST_SETS}
DEFAULT_PATHS = {f.key: f.rel for f in FOLDERS}
