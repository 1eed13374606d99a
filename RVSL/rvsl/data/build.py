"""Builders of the training and test loaders from the config."""

import logging
import os
from typing import List, NamedTuple, Optional, Tuple

import torch
from torch.utils.data import DataLoader

from ..config import CfgNode
from ..utils.errors import InputError
from . import layout
from .datasets import PairDataset, TestDataset, UnlabelledDataset
from .fvrid import ImageRecord, list_images, pair_twins, relabel, scan_labelled, summarize
from .samplers import PKBatchSampler, ShuffleBatchSampler

logger = logging.getLogger(__name__)

# The real training folder key of each stage (None in stage 1, which trains on synthetic pairs only),
# the test set each stage validates on, and the query and gallery folder keys of each test set (SYN is
# evaluated on its hazy images): all derived from the layout table.
REAL_TRAIN_KEY = layout.REAL_TRAIN_KEY
STAGE_TEST_SET = layout.STAGE_TEST_SET
TEST_KEYS = layout.TEST_KEYS
# Clear twins of the SYN test images: ground truth for the generators' SSIM/PSNR.
SYN_GT_KEYS = {"SYN_QUERY_FOGGY_PATH": "SYN_QUERY_CLEAR_PATH", "SYN_GALLERY_FOGGY_PATH": "SYN_GALLERY_CLEAR_PATH"}


class TrainLoaders(NamedTuple):
    """The labelled synthetic pair loader, the unlabelled real loader (None in stage 1), class count."""

    syn: DataLoader
    real: Optional[DataLoader]
    num_classes: int


def folder(cfg: CfgNode, key: str) -> str:
    """Absolute-or-relative path of the folder behind ``DATASETS.<key>``."""
    return os.path.join(cfg.DATASETS.DATA_PATH, cfg.DATASETS[key])


def _labelled(cfg: CfgNode, key: str) -> List[ImageRecord]:
    return scan_labelled(folder(cfg, key), f"DATASETS.{key}")


def _loader(cfg: CfgNode, dataset, **kwargs) -> DataLoader:
    return DataLoader(dataset, num_workers=cfg.DATALOADER.NUM_WORKERS, pin_memory=torch.cuda.is_available(),
                      **kwargs)


def _log_table(rows: List[Tuple[str, str, str, str]]) -> None:
    width = max(len(r[0]) for r in rows)
    logger.info("%-*s %8s %11s %8s", width, "folder", "images", "identities", "cameras")
    for name, images, ids, cams in rows:
        logger.info("%-*s %8s %11s %8s", width, name, images, ids, cams)


def build_train_loaders(cfg: CfgNode) -> TrainLoaders:
    """Loaders of a stage: P x K synthetic pairs, plus shuffled unlabelled real images in stages 2/3."""
    clear = _labelled(cfg, "SYN_TRAIN_CLEAR_PATH")
    hazy = _labelled(cfg, "SYN_TRAIN_FOGGY_PATH")
    pairs = pair_twins(clear, hazy)
    relabelled, mapping = relabel(ImageRecord(p.clear, p.pid, p.camid) for p in pairs)
    pairs = [p._replace(pid=r.pid) for p, r in zip(pairs, relabelled)]
    rows = [(cfg.DATASETS.SYN_TRAIN_CLEAR_PATH + " (pairs)", *map(str, summarize(relabelled)))]
    size, flip, pad = tuple(cfg.INPUT.SIZE_TRAIN), cfg.INPUT.FLIP_PROB, cfg.INPUT.PADDING
    try:
        sampler = PKBatchSampler([p.pid for p in pairs], cfg.DATALOADER.NUM_IDENTITIES,
                                 cfg.DATALOADER.NUM_INSTANCES, cfg.MODE.SEED)
    except ValueError as exc:
        raise InputError(f"DATALOADER.NUM_IDENTITIES: {exc} ({folder(cfg, 'SYN_TRAIN_CLEAR_PATH')})") from exc
    syn = _loader(cfg, PairDataset(pairs, size, flip, pad), batch_sampler=sampler)

    real = None
    real_key = REAL_TRAIN_KEY[cfg.MODE.STAGE]
    if real_key is not None:
        paths = list_images(folder(cfg, real_key), f"DATASETS.{real_key}")
        try:
            real_sampler = ShuffleBatchSampler(len(paths), cfg.DATALOADER.REAL_BATCH_SIZE, cfg.MODE.SEED)
        except ValueError as exc:
            raise InputError(f"DATALOADER.REAL_BATCH_SIZE: {exc} ({folder(cfg, real_key)})") from exc
        real = _loader(cfg, UnlabelledDataset(paths, size, flip, pad), batch_sampler=real_sampler)
        rows.append((cfg.DATASETS[real_key], str(len(paths)), "unlabelled", "-"))
    _log_table(rows)
    return TrainLoaders(syn, real, len(mapping))


def build_test_loader(cfg: CfgNode, test_set: str) -> Tuple[DataLoader, int]:
    """Loader over the query then gallery images of ``test_set``, and the number of queries."""
    if test_set not in TEST_KEYS:
        raise InputError(f"TEST.DATA is {test_set!r}; expected one of {', '.join(TEST_KEYS)}")
    records, gt_paths, rows = [], [], []
    for key in TEST_KEYS[test_set]:
        part = _labelled(cfg, key)
        if test_set == "SYN":
            twins = pair_twins(_labelled(cfg, SYN_GT_KEYS[key]), part)
            part = [ImageRecord(p.hazy, p.pid, p.camid) for p in twins]
            gt_paths += [p.clear for p in twins]
        rows.append((cfg.DATASETS[key], *map(str, summarize(part))))
        records.append(part)
    _log_table(rows)
    query, gallery = records
    dataset = TestDataset(query + gallery, tuple(cfg.INPUT.SIZE_TEST), gt_paths if test_set == "SYN" else None)
    loader = _loader(cfg, dataset, batch_size=cfg.TEST.IMS_PER_BATCH, shuffle=False)
    return loader, len(query)

