"""Training and feature-extraction speed and peak memory, on random images, for two or more settings.

The training step is the trainer's own (``Trainer.train_iteration``: stage step, both updates, the
non-finite check); only the data is random: uint8 batches in pinned memory, as the loaders give them.
Settings, each measured in this one process:

* ``reference``: as the reference code ran: fp32, NCHW, the unfused Adam loop, two discriminator passes per
  update, no activation checkpointing, every loss read back to the host after every step (one host-device
  synchronisation per loss);
* ``ours``: the defaults: autocast (bf16, or fp16 with gradient scaling where bf16 is missing), channels-last,
  fused Adam, one batched discriminator pass per update, activation checkpointing chosen from the free memory
  (``MODEL.ACTIVATION_CHECKPOINT auto``), losses kept on the device; the non-finite check still waits once per
  update;
* ``ours-noguard``: ``ours`` with that check off (``SOLVER.MAX_NONFINITE 0``): what the check costs;
* ``ours-dsplit``: ``ours`` with two discriminator passes per update (``MODEL.D_BATCHED_PASS False``);
* ``ours-nockpt`` / ``ours-fullres`` / ``ours-genckpt`` / ``ours-ckpt``: ``ours`` with activation checkpointing
  of nothing / the generators' full-resolution block / the generators / the generators and the ResNet stages
  (``MODEL.ACTIVATION_CHECKPOINT``): memory for time;
* ``ours-accum2``: ``ours`` with half the identities per loader batch and two batches per update
  (``SOLVER.ACCUM_STEPS 2``): the same images per update in about half the memory;
* ``ours-compile``: ``ours`` with ``SOLVER.COMPILE`` (compilation is left out of the timing).

Feature extraction is timed twice: the bare model on one random batch, and ``extract.py`` end to end (its
``run_extract``: checkpoint loading, JPEG decoding in the loader workers, the model, writing the features)
on a folder of generated JPEGs, after one warm-up run on a few of them.

Usage:

    python benchmarks/train_speed.py                     # the published setting (configs/FVRID.yml) on CUDA
    python benchmarks/train_speed.py --tiny              # a seconds-long CPU smoke run, configs/tiny.yml (tests)
    python benchmarks/train_speed.py --settings reference ours ours-ckpt --json out.json
    python benchmarks/train_speed.py --profile --settings ours --trace-dir DIR   # + trace, kernels, parts
"""

import argparse
import gc
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader

from rvsl.api.commands import run_extract
from rvsl.checkpoint import write_checkpoint
from rvsl.config import CfgNode, load_config
from rvsl.data.build import TrainLoaders
from rvsl.engine.memory import images_per_step
from rvsl.engine.trainer import Trainer
from rvsl.modeling import build_model
from rvsl.utils.misc import amp_dtype, autocast, channels_last, resolve_device, seed_everything, to_device
from train_profile import parts_table, profile_training

ROOT = Path(__file__).resolve().parents[1]
SETTINGS: Dict[str, List[str]] = {
    "reference": ["SOLVER.AMP", "off", "MODEL.CHANNELS_LAST", "False", "SOLVER.FUSED_ADAM", "False",
                  "MODEL.D_BATCHED_PASS", "False", "MODEL.ACTIVATION_CHECKPOINT", "none"],
    "ours": [],
    "ours-noguard": ["SOLVER.MAX_NONFINITE", "0"],
    "ours-dsplit": ["MODEL.D_BATCHED_PASS", "False"],
    "ours-nockpt": ["MODEL.ACTIVATION_CHECKPOINT", "none"],
    "ours-fullres": ["MODEL.ACTIVATION_CHECKPOINT", "fullres"],
    "ours-genckpt": ["MODEL.ACTIVATION_CHECKPOINT", "generators"],
    "ours-ckpt": ["MODEL.ACTIVATION_CHECKPOINT", "all"],
    "ours-accum2": ["SOLVER.ACCUM_STEPS", "2", "DATALOADER.NUM_IDENTITIES", "3", "DATALOADER.REAL_BATCH_SIZE", "9"],
    "ours-compile": ["SOLVER.COMPILE", "True"],
}
SYNC_EVERY_STEP = {"reference"}  # settings that read every loss back after every step, as the reference did
# --tiny, a seconds-long CPU setting for the smoke test: configs/tiny.yml (ResNet-18, 2 instances and 4 real images
# a batch) at 64x64 with 2 identities a batch and 16-channel generators and discriminators.
TINY_CONFIG = ROOT / "configs" / "tiny.yml"
TINY = ["INPUT.SIZE_TRAIN", "[64, 64]", "INPUT.SIZE_TEST", "[64, 64]", "DATALOADER.NUM_IDENTITIES", "2",
        "MODEL.GEN_CHANNELS", "16", "MODEL.DISC_CHANNELS", "16"]
NUM_CLASSES = 100
PROFILE_ITERS = 3  # profiled iterations after the timed ones (a trace of about a megabyte each, gzipped)

logger = logging.getLogger("train_speed")


class RandomDataTrainer(Trainer):
    """The trainer on fixed random batches (:func:`random_batch`): no folders, no test set, NUM_CLASSES identities.

    Its loaders serve the batches as they are; the benchmark hands them to ``train_iteration`` itself.
    """

    def __init__(self, cfg: CfgNode, device: torch.device, batches: List[Dict]) -> None:
        self.batches = batches
        super().__init__(cfg, device)

    def build_data(self, cfg: CfgNode) -> Tuple[TrainLoaders, None]:
        """Loaders over :attr:`batches` (each item a whole batch) and no test set."""
        stage1 = cfg.MODE.STAGE == "STAGE1"
        syn = DataLoader([batch if stage1 else batch["syn"] for batch in self.batches], batch_size=None)
        real = None if stage1 else DataLoader([batch["real"] for batch in self.batches], batch_size=None)
        return TrainLoaders(syn=syn, real=real, num_classes=NUM_CLASSES), None


def random_batch(cfg, stage: str, generator: torch.Generator) -> Dict:
    """One loader batch of random uint8 images (pinned on CUDA machines) with P x K identity labels."""
    p, k = cfg.DATALOADER.NUM_IDENTITIES, cfg.DATALOADER.NUM_INSTANCES
    height, width = cfg.INPUT.SIZE_TRAIN

    def images(n: int) -> torch.Tensor:
        out = torch.randint(0, 256, (n, 3, height, width), dtype=torch.uint8, generator=generator)
        return out.pin_memory() if torch.cuda.is_available() else out

    syn = {"clear": images(p * k), "hazy": images(p * k), "pid": torch.arange(p).repeat_interleave(k),
           "camid": torch.zeros(p * k, dtype=torch.long)}
    if stage == "STAGE1":
        return syn
    return {"syn": syn, "real": {"img": images(cfg.DATALOADER.REAL_BATCH_SIZE)}}


def synchronize(device: torch.device) -> None:
    """Wait for the GPU's queued work (nothing to wait for on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    """Free what the previous setting left and restart the GPU's peak-memory count."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gb(device: torch.device) -> Optional[float]:
    """Peak GPU memory allocated since :func:`reset_peak`, in GB; None on the CPU."""
    return torch.cuda.max_memory_allocated(device) / 1e9 if device.type == "cuda" else None


def seconds_per_run(run: Callable[[int], None], iters: int, warmup: int, device: torch.device) -> float:
    """Mean seconds of one of ``iters`` timed ``run``s after ``warmup`` untimed ones, the device drained around."""
    run(warmup)
    synchronize(device)
    start = time.perf_counter()
    run(iters)
    synchronize(device)
    return (time.perf_counter() - start) / iters


def time_training(cfg, stage: str, setting: str, device: torch.device, iters: int, warmup: int,
                  trace: Optional[Path] = None) -> Dict:
    """Images/s and peak memory of ``iters`` training iterations after ``warmup`` untimed ones; with ``trace``,
    then a profile of a few more iterations (:mod:`train_profile`), its trace written there."""
    seed_everything(0)
    reset_peak(device)
    with tempfile.TemporaryDirectory() as out:
        cfg = cfg.clone()
        cfg.defrost()
        cfg.OUTPUT_DIR = out
        generator = torch.Generator().manual_seed(0)
        batches = [random_batch(cfg, stage, generator) for _ in range(2 * cfg.SOLVER.ACCUM_STEPS)]
        trainer = RandomDataTrainer(cfg, device, batches)
        sync_each_step = setting in SYNC_EVERY_STEP

        def run(count: int) -> None:
            for i in range(count):
                first = (i % 2) * cfg.SOLVER.ACCUM_STEPS
                losses, disc_losses = trainer.train_iteration(batches[first:first + cfg.SOLVER.ACCUM_STEPS])
                if sync_each_step:
                    [value.item() for value in {**losses, **disc_losses}.values()]

        seconds = seconds_per_run(run, iters, warmup, device)
        peak = peak_gb(device)
        profiled = profile_training(trainer, run, device, PROFILE_ITERS, trace) if trace else None
        policy = trainer.activation_checkpoint
        trainer = batches = None  # the GPU memory is free before the next setting
    images = images_per_step(cfg, stage) * cfg.SOLVER.ACCUM_STEPS
    row = {"stage": stage, "setting": setting, "step_s": seconds, "images_per_s": images / seconds,
           "peak_gb": peak, "activation_checkpoint": policy}
    return {**row, "profile": profiled} if profiled else row


def time_extraction(cfg, setting: str, device: torch.device, iters: int, warmup: int, batch_size: int) -> Dict:
    """Images/s of test-time features (the hazy branch: normalise, encoder, ReID body, BNNeck), no gradients."""
    seed_everything(0)
    reset_peak(device)
    model = build_model(cfg, NUM_CLASSES).to(device).eval()
    nhwc = channels_last(cfg.MODEL.CHANNELS_LAST, device, model)
    height, width = cfg.INPUT.SIZE_TEST
    batch = torch.randint(0, 256, (batch_size, 3, height, width), dtype=torch.uint8)
    batch = batch.pin_memory() if torch.cuda.is_available() else batch
    dtype = amp_dtype(cfg.SOLVER.AMP, device)

    def run(count: int) -> None:
        with torch.no_grad(), autocast(device, dtype):
            for _ in range(count):
                model(to_device(batch, device, nhwc), "hazy")

    seconds = seconds_per_run(run, iters, warmup, device)
    return {"stage": "extract", "setting": setting, "step_s": seconds, "images_per_s": batch_size / seconds,
            "peak_gb": peak_gb(device)}


def write_jpegs(folder: Path, count: int, size: Tuple[int, int], seed: int = 0, distinct: int = 64) -> Path:
    """``count`` JPEG files (quality 90) of ``size``, ``distinct`` different smooth random images (upscaled
    noise, about a photo's decoding cost) written in turn."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    encoded = []
    for _ in range(min(count, distinct)):
        small = rng.integers(0, 256, (size[0] // 16, size[1] // 16, 3), dtype=np.uint8)
        image = cv2.resize(small, size[::-1], interpolation=cv2.INTER_CUBIC)
        image = np.clip(image + rng.normal(0, 6, image.shape), 0, 255).astype(np.uint8)
        encoded.append(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes())
    for i in range(count):
        (folder / f"{i:06d}.jpg").write_bytes(encoded[i % len(encoded)])
    return folder


def time_extract_command(cfg, setting: str, device: torch.device, count: int, batch_size: int) -> Dict:
    """Images/s of ``extract.py``'s ``run_extract`` end to end on ``count`` JPEGs at the test size (checkpoint
    loading, decoding in ``DATALOADER.NUM_WORKERS`` workers, the model, writing), after a warm-up run."""
    seed_everything(0)
    cfg = cfg.clone()
    cfg.defrost()
    cfg.TEST.IMS_PER_BATCH = batch_size
    size = tuple(cfg.INPUT.SIZE_TEST)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        weight = root / "model.pth"
        write_checkpoint(weight, build_model(cfg, NUM_CLASSES).state_dict(), stage="STAGE1", epoch=1, config=cfg,
                         num_classes=NUM_CLASSES)
        warm = write_jpegs(root / "warm", min(count, 2 * batch_size), size, seed=1)
        images = write_jpegs(root / "images", count, size)
        def command(folder: Path, out: str) -> argparse.Namespace:  # extract.py's arguments, no overrides
            return argparse.Namespace(weight=str(weight), input=str(folder), output=str(root / out), opts=[])

        run_extract(cfg, command(warm, "out_warm"))
        reset_peak(device)
        synchronize(device)
        start = time.perf_counter()
        run_extract(cfg, command(images, "out"))
        synchronize(device)
        seconds = time.perf_counter() - start
    return {"stage": "extract.py", "setting": setting, "step_s": seconds * batch_size / count,
            "images_per_s": count / seconds, "peak_gb": peak_gb(device)}


def table(rows: List[Dict]) -> str:
    """Markdown table: per row images/s, step time, peak memory and the speed-up over ``reference``."""
    base = {r["stage"]: r["images_per_s"] for r in rows if r["setting"] == "reference"}
    lines = ["| what | setting | images/s | step (s) | peak GB | vs reference |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        against = "extract" if r["stage"] == "extract.py" else r["stage"]  # extract.py: against the bare model
        ratio = f"{r['images_per_s'] / base[against]:.2f}x" if against in base else "-"
        peak = f"{r['peak_gb']:.1f}" if r["peak_gb"] is not None else "n/a (CPU)"
        lines.append(f"| {r['stage']} | {r['setting']} | {r['images_per_s']:.1f} | {r['step_s']:.3f} | {peak} "
                     f"| {ratio} |")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> List[Dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="", help="default configs/FVRID.yml; with --tiny, configs/tiny.yml")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--tiny", action="store_true", help="the small CPU smoke setting")
    parser.add_argument("--stages", nargs="+", default=["STAGE1", "STAGE3"], choices=["STAGE1", "STAGE2", "STAGE3"])
    parser.add_argument("--settings", nargs="+", default=["reference", "ours", "ours-noguard", "ours-ckpt"],
                        choices=list(SETTINGS))
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--extract-batch", type=int, default=256)
    parser.add_argument("--extract-images", type=int, default=4096, help="JPEGs for extract.py end to end")
    parser.add_argument("--no-extract", action="store_true", help="skip the feature-extraction figures")
    parser.add_argument("--profile", action="store_true",
                        help="also profile each stage's first non-reference setting: trace, top kernels, parts")
    parser.add_argument("--trace-dir", default=str(ROOT / "output" / "train_speed_profile"),
                        help="where --profile writes trace_<stage>.json.gz (Chrome / Perfetto format)")
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides, KEY VALUE pairs")
    args = parser.parse_args(argv)
    args.config = args.config or str(TINY_CONFIG if args.tiny else ROOT / "configs" / "FVRID.yml")
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logger.setLevel(logging.INFO)

    device = resolve_device(args.device)
    extra = (TINY if args.tiny else []) + ["MODEL.DEVICE", str(device), *args.opts]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    rows: List[Dict] = []

    def record(row: Dict, what: str) -> None:
        """Keep ``row``, say it, print its profile, and rewrite the JSON (a run cut short keeps what it had)."""
        rows.append(row)
        logger.info("%s: %.1f images/s", what, row["images_per_s"])
        if row.get("profile"):
            print(f"\n{row['stage']} {row['setting']}: {row['profile']['wall_ms_per_iter']:.1f} ms per profiled "
                  f"iteration; trace {row['profile']['trace']}\n{row['profile']['top']}")
            print(parts_table(row["stage"], row["profile"]), flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps({"device": name, "rows": rows}, indent=2), encoding="utf-8")

    profiled = [s for s in args.settings if s != "reference"][:1] if args.profile else []
    for stage in args.stages:
        for setting in args.settings:
            cfg = load_config(args.config, extra + SETTINGS[setting], stage=stage)
            trace = Path(args.trace_dir) / f"trace_{stage}.json.gz" if setting in profiled else None
            record(time_training(cfg, stage, setting, device, args.iters, args.warmup, trace), f"{stage} {setting}")
    if not args.no_extract:
        batch = 8 if args.tiny else args.extract_batch
        for setting in [s for s in ("reference", "ours") if s in args.settings]:
            cfg = load_config(args.config, extra + SETTINGS[setting])
            record(time_extraction(cfg, setting, device, args.iters, args.warmup, batch), f"extract {setting}")
        if "ours" in args.settings:
            cfg = load_config(args.config, extra + SETTINGS["ours"])
            count = 12 if args.tiny else args.extract_images
            record(time_extract_command(cfg, "ours", device, count, batch), "extract.py ours")
    print(f"device: {name}; torch {torch.__version__}; config {args.config}{' --tiny' if args.tiny else ''}")
    print(table(rows))
    return rows


if __name__ == "__main__":
    main()
