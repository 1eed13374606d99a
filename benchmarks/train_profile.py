"""``train_speed.py --profile``: a torch.profiler trace of the training step, its top kernels and each part's share.

The parts are labelled from here, by wrapping the trainer's own pieces in ``torch.profiler.record_function``
for the profiled iterations only (the library carries no labels): data to device, each encoder, the ReID
body, each generator, the discriminator pass of the generator term, the rest of the step's forward (the
losses), the discriminator update (its pass(es) and loss), the backward of each update, each optimiser step
and the non-finite check. On CUDA a part's share is the GPU time of the kernels it launched; the backward runs
on the autograd engine's own thread there, so it is one row for both updates ("backward kernels"). On the
CPU a part's share is its wall-clock time.
"""

import functools
import gzip
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Tuple

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile, record_function

import rvsl.engine.trainer as trainer_module

NETWORKS = (("enc_clear", "encoder E_C"), ("enc_hazy", "encoder E_H"), ("reid", "ReID body"),
            ("gen_hazy", "generator G_H"), ("gen_clear", "generator G_C"))
STEP, FOOL = "stage step forward", "D pass: generator term"
AUTOGRAD = "autograd::engine::evaluate_function"
MISSING = object()


def labelled(fn: Callable, name: str) -> Callable:
    """``fn`` inside ``record_function(name)``."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with record_function(name):
            return fn(*args, **kwargs)
    return wrapper


def by_update(fn: Callable, what: str) -> Callable:
    """``fn(name, ...)`` inside ``record_function(f"{what} ({name})")``: one label per update (model, disc)."""
    def wrapper(name, *args, **kwargs):
        with record_function(f"{what} ({name})"):
            return fn(name, *args, **kwargs)
    return wrapper


@contextmanager
def parts_labelled(trainer) -> Iterator[None]:
    """Label the trainer's parts (instance attributes and the trainer module's ``to_device``) while inside."""
    patched: List[Tuple[object, str, object]] = []

    def patch(owner, attr: str, value) -> None:
        patched.append((owner, attr, vars(owner).get(attr, MISSING)))
        setattr(owner, attr, value)

    for attr, name in NETWORKS:
        module = getattr(trainer.model, attr)
        patch(module, "forward", labelled(module.forward, name))
    patch(trainer.step, "fool", labelled(trainer.step.fool, FOOL))
    patch(trainer.step_module, "step", labelled(trainer.step, STEP))
    patch(trainer.disc_loss, "forward", labelled(trainer.disc_loss.forward, "D update: passes and loss"))
    patch(trainer, "_backward", by_update(trainer._backward, "backward"))
    patch(trainer, "_step", by_update(trainer._step, "optimiser step"))
    patch(trainer.guard, "check", labelled(trainer.guard.check, "non-finite check"))
    to_device = trainer_module.to_device
    trainer_module.to_device = labelled(to_device, "data to device")
    try:
        yield
    finally:
        trainer_module.to_device = to_device
        for owner, attr, before in reversed(patched):
            if before is MISSING:
                delattr(owner, attr)  # the class's own attribute shows through again
            else:
                setattr(owner, attr, before)


def part_shares(events, device: torch.device, wall_us: float) -> List[Tuple[str, float, float]]:
    """(part, milliseconds, share of the total) from the profiler's averaged events."""
    cuda = device.type == "cuda"
    total_of: Dict[str, float] = {}
    for event in events:  # the host-side ranges (a label also has a GPU-side twin, skipped here)
        if event.device_type == DeviceType.CPU:
            value = event.device_time_total if cuda else event.cpu_time_total
            total_of[event.key] = total_of.get(event.key, 0.0) + value
    kernels = [e for e in events if e.device_type != DeviceType.CPU and not e.is_user_annotation]
    total = sum(e.self_device_time_total for e in kernels) if cuda else wall_us
    names = [name for _, name in NETWORKS]
    parts: Dict[str, float] = {"data to device": total_of.get("data to device", 0.0)}
    parts.update({name: total_of.get(name, 0.0) for name in names})
    parts[FOOL] = total_of.get(FOOL, 0.0)
    parts["losses and the rest of the step's forward"] = max(
        0.0, total_of.get(STEP, 0.0) - sum(parts[name] for name in names) - parts[FOOL])
    for key in ("D update: passes and loss", "backward (model)", "backward (disc)", "optimiser step (model)",
                "optimiser step (disc)", "non-finite check"):
        parts[key] = total_of.get(key, 0.0)
    if cuda:  # the backward's kernels, launched from the autograd thread, outside the labels
        parts["backward kernels (both updates)"] = sum(v for k, v in total_of.items() if k.startswith(AUTOGRAD))
    parts["other"] = max(0.0, total - sum(parts.values()))
    return [(name, value / 1e3, value / total if total else 0.0) for name, value in parts.items()]


def profile_training(trainer, run: Callable[[int], None], device: torch.device, iters: int,
                     trace: Path) -> Dict:
    """Profile ``iters`` iterations of ``run`` (already warmed up): write the gzipped Chrome trace to ``trace``,
    return the top-kernel table and the per-part shares."""
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with parts_labelled(trainer), profile(activities=activities) as prof:
        start = time.perf_counter()
        run(iters)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        wall_us = (time.perf_counter() - start) * 1e6
    trace.parent.mkdir(parents=True, exist_ok=True)
    plain = trace.with_suffix("")  # name.json.gz -> name.json, compressed then removed
    prof.export_chrome_trace(str(plain))
    with open(plain, "rb") as src, gzip.open(trace, "wb") as dst:
        shutil.copyfileobj(src, dst)
    plain.unlink()
    events = prof.key_averages()
    sort = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    return {"trace": str(trace), "iters": iters, "wall_ms_per_iter": wall_us / 1e3 / iters,
            "top": events.table(sort_by=sort, row_limit=15, max_name_column_width=60),
            "parts": [{"part": p, "ms_per_iter": ms / iters, "share": share}
                      for p, ms, share in part_shares(events, device, wall_us)]}


def parts_table(stage: str, result: Dict) -> str:
    """Markdown table of one profile's parts: milliseconds per iteration and share."""
    lines = [f"| {stage} part | ms / iteration | share |", "| --- | --- | --- |"]
    lines += [f"| {p['part']} | {p['ms_per_iter']:.1f} | {100 * p['share']:.1f} % |" for p in result["parts"]]
    return "\n".join(lines)
