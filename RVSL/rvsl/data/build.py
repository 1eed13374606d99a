"""Builders of the training and test loaders from the config."""

import logging
import os
from typing import Dict, List, NamedTuple, Optional, Sequence, Set, Tuple

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..config import CfgNode
from ..utils import comm
from ..utils.errors import InputError
from .. import layout
from .datasets import ImageListDataset, PairDataset, TestDataset, UnlabelledDataset
from .fvrid import ImageRecord, PairRecord, list_images, pair_twins, relabel, scan_labelled, summarize
from .samplers import InferenceBatchSampler, PKBatchSampler, SeededBatches, ShuffleBatchSampler
from .transforms import Augment, init_worker

logger = logging.getLogger(__name__)

# The real training folder key of each stage (None in stage 1, which trains on synthetic pairs only),
# the test set each stage validates on, and the query and gallery folder keys of each test set (SYN is
# evaluated on its hazy images): all derived from the layout table.
REAL_TRAIN_KEY = layout.REAL_TRAIN_KEY
STAGE_TEST_SET = layout.STAGE_TEST_SET
TEST_KEYS = layout.TEST_KEYS
# Clear twins of the SYN test images: ground truth for the generators' SSIM/PSNR.
SYN_TWIN_KEYS = {f.key: layout.twin(f).key for f in layout.eval_folders("SYN")}


class TrainLoaders(NamedTuple):
    """A stage's loaders: training (synthetic pairs; unlabelled real images, None in stage 1), the class
    count, and the label-free validation data held out of the training folders (None when not held out):
    ``val_syn`` a (loader, number of queries) of held-out synthetic identities, ``val_real`` held-out
    unlabelled real images (stages 2/3)."""

    syn: DataLoader
    real: Optional[DataLoader]
    num_classes: int
    val_syn: Optional[Tuple[DataLoader, int]] = None
    val_real: Optional[DataLoader] = None


def folder(cfg: CfgNode, key: str) -> str:
    """Absolute-or-relative path of the folder behind ``DATASETS.<key>``."""
    return os.path.join(cfg.DATASETS.DATA_PATH, cfg.DATASETS[key])


def _labelled(cfg: CfgNode, key: str) -> List[ImageRecord]:
    return scan_labelled(folder(cfg, key), f"DATASETS.{key}")


def make_loader(cfg: CfgNode, dataset, num_workers: Optional[int] = None, **kwargs) -> DataLoader:
    """A DataLoader with the config's workers (``num_workers`` if given; kept alive between epochs, each
    ``DATALOADER.PREFETCH`` batches ahead), pinned memory on CUDA and single-threaded OpenCV in the workers.

    The loader seeds its workers from a generator of its own, never from torch's global one, so starting
    workers (once with persistent workers, or again after a resume) leaves the training's random stream alone.
    """
    workers = cfg.DATALOADER.NUM_WORKERS if num_workers is None else num_workers
    extra = {"persistent_workers": True, "prefetch_factor": cfg.DATALOADER.PREFETCH} if workers > 0 else {}
    return DataLoader(dataset, num_workers=workers, pin_memory=torch.cuda.is_available(),
                      worker_init_fn=init_worker, generator=torch.Generator().manual_seed(cfg.MODE.SEED),
                      **extra, **kwargs)


def _log_table(rows: List[Tuple[str, str, str, str]]) -> None:
    width = max(len(r[0]) for r in rows)
    logger.info("%-*s %8s %11s %8s", width, "folder", "images", "identities", "cameras")
    for name, images, ids, cams in rows:
        logger.info("%-*s %8s %11s %8s", width, name, images, ids, cams)


def augment_from_cfg(cfg: CfgNode) -> Augment:
    """The train-time augmentation of ``cfg.INPUT``."""
    i = cfg.INPUT
    return Augment(i.FLIP_PROB, tuple(i.RESIZE_RANGE), i.PADDING, i.ERASE_PROB, tuple(i.ERASE_AREA),
                   i.ERASE_ASPECT, tuple(i.ERASE_FILL), i.JITTER_PROB, tuple(i.JITTER), i.BLUR_PROB,
                   tuple(i.BLUR_SIGMA), i.NOISE_STD)


def held_out_identities(pids: Sequence[int], count: int, seed: int) -> Set[int]:
    """The ``count`` identities of ``pids`` held out for validation: a prefix of a seeded permutation.

    The distinct identities are sorted, permuted by ``numpy.random.default_rng(seed)`` and the
    first ``count`` taken, so the split depends on the identities and the seed alone.
    """
    if count <= 0:
        return set()
    ordered = sorted(set(int(p) for p in pids))
    return {ordered[i] for i in np.random.default_rng(seed).permutation(len(ordered))[:count]}


def query_gallery_split(pairs: Sequence[PairRecord]) -> Tuple[List[PairRecord], List[PairRecord]]:
    """Per identity and camera, the first pair in sorted hazy-path order is a query; all others are gallery."""
    query: Dict[Tuple[int, int], PairRecord] = {}
    gallery = []
    for pair in sorted(pairs, key=lambda p: p.hazy):
        if (pair.pid, pair.camid) in query:
            gallery.append(pair)
        else:
            query[(pair.pid, pair.camid)] = pair
    return list(query.values()), gallery


def _syn_train_split(cfg: CfgNode) -> Tuple[List[PairRecord], List[PairRecord]]:
    """Synthetic training pairs (original identities): those kept for training, those held out (VAL)."""
    pairs = pair_twins(_labelled(cfg, "SYN_TRAIN_CLEAR_PATH"), _labelled(cfg, "SYN_TRAIN_FOGGY_PATH"))
    count = cfg.VAL.SYN_IDENTITIES
    num_ids = len({p.pid for p in pairs})
    if count >= num_ids:
        raise InputError(f"VAL.SYN_IDENTITIES is {count} but {folder(cfg, 'SYN_TRAIN_CLEAR_PATH')} has only "
                         f"{num_ids} identities; hold out fewer")
    held = held_out_identities([p.pid for p in pairs], count, cfg.MODE.SEED)
    return [p for p in pairs if p.pid not in held], [p for p in pairs if p.pid in held]


def _real_train_split(cfg: CfgNode, key: str) -> Tuple[List[str], List[str]]:
    """The real training images of ``key`` as bare paths: those trained on, those held out (VAL.REAL_IMAGES).

    The held-out images are a seeded random choice; their names are never parsed.
    """
    paths = list_images(folder(cfg, key), f"DATASETS.{key}")
    count = cfg.VAL.REAL_IMAGES
    if count and count >= len(paths):
        raise InputError(f"VAL.REAL_IMAGES is {count} but {folder(cfg, key)} has only {len(paths)} images")
    held = set(np.random.default_rng(cfg.MODE.SEED).permutation(len(paths))[:count].tolist())
    return [p for i, p in enumerate(paths) if i not in held], [p for i, p in enumerate(paths) if i in held]


def build_train_loaders(cfg: CfgNode) -> TrainLoaders:
    """Loaders of a stage: P x K synthetic pairs, plus shuffled unlabelled real images in stages 2/3.

    Identities held out by ``VAL.SYN_IDENTITIES`` and real images held out by ``VAL.REAL_IMAGES``
    are left out of training and come back as the validation loaders (each folder is scanned once).
    In a distributed run each process loads its share of every global batch (see ``samplers``); the
    held-out real images are not sharded (every process computes the label-free proxies on all of them).
    """
    pairs, held = _syn_train_split(cfg)
    relabelled, mapping = relabel(ImageRecord(p.clear, p.pid, p.camid) for p in pairs)
    pairs = [p._replace(pid=r.pid) for p, r in zip(pairs, relabelled)]
    rows = [(cfg.DATASETS.SYN_TRAIN_CLEAR_PATH + " (pairs)", *map(str, summarize(relabelled)))]
    size, augment = tuple(cfg.INPUT.SIZE_TRAIN), augment_from_cfg(cfg)
    try:
        sampler = PKBatchSampler([p.pid for p in pairs], cfg.DATALOADER.NUM_IDENTITIES,
                                 cfg.DATALOADER.NUM_INSTANCES, cfg.MODE.SEED, *_process())
    except ValueError as exc:
        kept = f" once VAL.SYN_IDENTITIES = {len({p.pid for p in held})} are held out" if held else ""
        raise InputError(f"DATALOADER.NUM_IDENTITIES: {exc}{kept} ({folder(cfg, 'SYN_TRAIN_CLEAR_PATH')})") from exc
    syn = make_loader(cfg, PairDataset(pairs, size, augment), batch_sampler=SeededBatches(sampler, cfg.MODE.SEED))
    val_syn = None
    if held:
        query, gallery = query_gallery_split(held)
        rows += [(f"{cfg.DATASETS.SYN_TRAIN_FOGGY_PATH} (held-out {part})", *map(str, summarize(_hazy_records(p))))
                 for part, p in (("query", query), ("gallery", gallery))]
        val_syn = _test_loader(cfg, _hazy_records(query), _hazy_records(gallery), [p.clear for p in query + gallery])

    real = val_real = None
    real_key = REAL_TRAIN_KEY[cfg.MODE.STAGE]
    if real_key is not None:
        paths, held_paths = _real_train_split(cfg, real_key)
        try:
            real_sampler = ShuffleBatchSampler(len(paths), cfg.DATALOADER.REAL_BATCH_SIZE, cfg.MODE.SEED, *_process())
        except ValueError as exc:
            raise InputError(f"DATALOADER.REAL_BATCH_SIZE: {exc} ({folder(cfg, real_key)})") from exc
        real = make_loader(cfg, UnlabelledDataset(paths, size, augment),
                           batch_sampler=SeededBatches(real_sampler, cfg.MODE.SEED + 1))
        rows.append((cfg.DATASETS[real_key], str(len(paths)), "unlabelled", "-"))
        if held_paths:
            val_real = make_loader(cfg, ImageListDataset(held_paths, tuple(cfg.INPUT.SIZE_TEST)),
                               batch_size=cfg.TEST.IMS_PER_BATCH, shuffle=False)
            rows.append((f"{cfg.DATASETS[real_key]} (held-out)", str(len(held_paths)), "unlabelled", "-"))
    _log_table(rows)
    rank, world_size = _process()
    if world_size > 1:
        d = cfg.DATALOADER
        logger.info("%d processes: each loads %d identities x %d instances%s of every global batch of %d x %d",
                    world_size, d.NUM_IDENTITIES, d.NUM_INSTANCES, f" and {d.REAL_BATCH_SIZE} real images" if real
                    else "", world_size * d.NUM_IDENTITIES, d.NUM_INSTANCES)
    return TrainLoaders(syn, real, len(mapping), val_syn, val_real)


def _process() -> Tuple[int, int]:
    """(rank, number of processes) of this run, for the samplers."""
    return comm.get_rank(), comm.get_world_size()


def _test_loader(cfg: CfgNode, query: List[ImageRecord], gallery: List[ImageRecord],
                 twins: Optional[List[str]]) -> Tuple[DataLoader, int]:
    """Query then gallery in order; in a distributed run, this process's contiguous shard of the batches
    (``inference_on_dataset`` gathers the evaluators' results of all shards)."""
    dataset = TestDataset(query + gallery, tuple(cfg.INPUT.SIZE_TEST), twins)
    sampler = InferenceBatchSampler(len(dataset), cfg.TEST.IMS_PER_BATCH, *_process())
    return make_loader(cfg, dataset, batch_sampler=sampler), len(query)


def _hazy_records(pairs: Sequence[PairRecord]) -> List[ImageRecord]:
    return [ImageRecord(p.hazy, p.pid, p.camid) for p in pairs]


def _check_test_set(test_set: str) -> None:
    if test_set not in TEST_KEYS:
        raise InputError(f"TEST.DATA is {test_set!r}; expected one of {', '.join(TEST_KEYS)}")


def has_test_set(cfg: CfgNode, test_set: str) -> bool:
    """Whether the query and gallery folders of ``test_set`` (and, for SYN, their clear twins) exist."""
    _check_test_set(test_set)
    keys = list(TEST_KEYS[test_set])
    if test_set == "SYN":
        keys += [SYN_TWIN_KEYS[key] for key in TEST_KEYS[test_set]]
    return all(os.path.isdir(folder(cfg, key)) for key in keys)




def build_test_loader(cfg: CfgNode, test_set: str) -> Tuple[DataLoader, int]:
    """Loader over the query then gallery images of ``test_set``, and the number of queries."""
    _check_test_set(test_set)
    records, twins, rows = [], [], []
    for key in TEST_KEYS[test_set]:
        part = _labelled(cfg, key)
        if test_set == "SYN":
            pairs = pair_twins(_labelled(cfg, SYN_TWIN_KEYS[key]), part)
            part = _hazy_records(pairs)
            twins += [p.clear for p in pairs]
        rows.append((cfg.DATASETS[key], *map(str, summarize(part))))
        records.append(part)
    _log_table(rows)
    return _test_loader(cfg, *records, twins if test_set == "SYN" else None)
