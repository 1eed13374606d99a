"""Does label-free adaptation help? RVSL stages 1 -> 2 -> 3 against honest baselines, on the demo data.

Every model below is trained through the project's own command line; each seed's variants start from
that seed's one stage-1 checkpoint, and every checkpoint is the label-free choice of SOLVER.BEST_METRIC
(the default, ``last``; no real label is read to choose or chain it):

* ``stage1``          stage 1 alone (synthetic pairs with labels);
* ``control``         stage 1 continued for as many epochs as stages 2 and 3 add (is it just more training?);
* ``adabn``           stage 1 + AdaBN: the hazy branch's BatchNorm statistics re-estimated on the unlabelled
                      real hazy training images (no label, no gradient);
* ``rvsl``            stage 1 -> 2 -> 3, the method;
* ``rvsl_no_stage2``  stage 1 -> 3;
* ``rvsl_adabn``      the method, then AdaBN;
* ``no_ec`` ``no_prior`` ``no_cycle`` ``no_adv``: the method with one stage-3 real-branch term off
                      (LOSS.REAL_EC, LOSS.REAL_PRIOR, LOSS.REAL_CYCLE, LOSS.REAL_ADV at 0);
* ``ceiling``         stage 1 continued with the real hazy TRAINING labels (supervised on real hazy images:
                      the demo data has those labels; a real user does not). An upper reference, not a method.

The dev/test protocol: the hazy evaluation sets are REAL_FOGGY_DEV (the labelled dev split: identities in
neither the real training nor the test folders), on which settings are chosen, and REAL_FOGGY (the test
split), read only to report. ``--sets dev`` never opens the test folders; no training run opens them either
(their paths are pointed elsewhere for training, so stage 3 does not validate on them) and no training run
reads the dev folders. The tables give, per variant, hazy/clear/fused mAP and rank-1 (mean +- sd over seeds)
and the paired difference of rvsl minus every other variant (hazy mAP, mean and 95 % t-interval over seeds).

    python benchmarks/adaptation.py                        # 5 seeds, dev and test (see the README for the time)
    python benchmarks/adaptation.py --sets dev --seeds 0   # a dev probe: the test split is not read
    python benchmarks/adaptation.py --seeds 0 --quick      # a smoke run
    python benchmarks/adaptation.py --resume               # train what --deadline or an interrupt left out, report all

Results: OUT/adaptation.json (``results[variant][branch]``: per-seed values in [0, 1] on the test split,
``dev`` the same on the dev split), tables on stdout, a bar chart (``--figure``, default Fig/adaptation.png)
and the first seed's stage-3 dehazed images beside it (Fig/adaptation_dehazed.png). ``--choice-study`` lets
stage 3 validate every epoch on the dev split (its REAL_FOGGY keys point at the dev folders; the test split
is not read) and prints how each label-free checkpoint-choice candidate of SOLVER.BEST_METRIC tracks the dev
mAP over epochs: the evidence for choosing the default on dev.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from rvsl import layout
from rvsl.engine.hooks import metric_value

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("stage1", "control", "adabn", "rvsl", "rvsl_no_stage2", "rvsl_adabn", "no_ec", "no_prior",
            "no_cycle", "no_adv", "ceiling")
# One stage-3 real-branch term off per ablation.
ABLATIONS = {"no_ec": "LOSS.REAL_EC", "no_prior": "LOSS.REAL_PRIOR", "no_cycle": "LOSS.REAL_CYCLE",
             "no_adv": "LOSS.REAL_ADV"}
# Training order over all seeds: phase by phase (what a --deadline cuts comes last).
PHASES = (("stage1", "adabn", "control", "rvsl", "rvsl_adabn"), ("rvsl_no_stage2", "ceiling"), tuple(ABLATIONS))
BRANCHES = ("hazy", "clear", "fused")
SETS = {"dev": "REAL_FOGGY_DEV", "test": "REAL_FOGGY"}
# Training runs see the real hazy test folders under names that do not exist: they never open them.
HIDE_TEST = [item for f in layout.eval_folders("REAL_FOGGY")
             for item in (f"DATASETS.{f.key}", f"not_read_in_training/{f.rel}")]
# Two-sided 95 % quantiles of Student's t by degrees of freedom (the paired intervals over seeds).
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}
CANDIDATES = ("syn_val/hazy/mAP", "syn_val/fused/mAP", "real_proxy/cycle_psnr", "real_proxy/agreement",
              "real_proxy/knn_overlap", "last")
# With --choice-study, training runs see the dev folders under the REAL_FOGGY keys: stage 3 validates on the dev
# split every epoch, reported in history.json as its "test_labels" (which no candidate reads).
DEV_AS_TEST = [item for test, dev in zip(layout.eval_folders("REAL_FOGGY"), layout.eval_folders(SETS["dev"]))
               for item in (f"DATASETS.{test.key}", dev.rel)]
# What each stage's candidates are read against with --choice-study: stage 3's hazy-branch dev mAP (stage 2
# has no dev split of its clear domain; stage 1 none of the real domain).
TARGETS = {"stage3": "test_labels/hazy/mAP"}


def run(args: Sequence[str], log: Path, threads: Optional[int] = None) -> None:
    """Run ``python ARGS`` from the repository root (``threads`` CPU threads); output to ``log``; stop on failure."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(f"\n$ {' '.join(args)}\n")
        handle.flush()
        done = subprocess.run([sys.executable, *args], cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT, env=env)
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}): {' '.join(args)}; see {log}")


def ceiling_data(data: Path, out: Path) -> Path:
    """A data root whose synthetic training pairs are the real hazy training images (both twins), with labels."""
    root = out / "ceiling_data"
    if root.exists():
        return root
    for top in ("FVRID_syn", "FVRID_clear", "FVRID_real"):
        (root / top).mkdir(parents=True)
        for sub in (data / top).iterdir():
            if not sub.name.startswith("train"):
                (root / top / sub.name).symlink_to(sub.resolve())
    for top, sub in (("FVRID_clear", "train_clear"), ("FVRID_real", "train_foggy"),
                     ("FVRID_syn", "train_clear"), ("FVRID_syn", "train_foggy")):
        source = data / "FVRID_real" / "train_foggy" if top == "FVRID_syn" else data / top / sub
        (root / top / sub).symlink_to(source.resolve())
    return root


def seed_runner(seed: int, args: argparse.Namespace):
    """``(out, stage)``: the seed's folder and a function training stage N of it into OUT/seedS/NAME."""
    out = args.out / f"seed{seed}"
    out.mkdir(parents=True, exist_ok=True)
    hide = DEV_AS_TEST if args.choice_study else HIDE_TEST
    train = ["-c", args.config, "DATASETS.DATA_PATH", str(args.data), "MODE.SEED", str(seed), *args.opts, *hide]
    validate = ["SOLVER.EVAL_PERIOD", "1"] if args.choice_study else []  # else after the last epoch only

    def stage(n: int, name: str, pretrain: Optional[Path], epochs: int, *opts: str, script: str = "") -> Path:
        """Train stage ``n`` (or run ``script`` on TEST.WEIGHT ``pretrain``) into OUT/seedS/NAME; its weights.

        What an unfinished run left in that folder (``--resume``) is removed first."""
        shutil.rmtree(out / name, ignore_errors=True)
        if script:
            run([script, *train, "TEST.WEIGHT", str(pretrain), "OUTPUT_DIR", str(out / name)], out / "runs.log",
                args.threads)
            return out / name / "adabn.pth"
        init = ["MODEL.PRETRAIN_PATH", str(pretrain)] if pretrain else []
        run([f"RVSL/stage{n}_trainer.py", *train, "OUTPUT_DIR", str(out / name), *init, "SOLVER.MAX_EPOCHS",
             str(epochs), *steps(args, n), *(validate if n == 3 else []), *opts], out / "runs.log", args.threads)
        return out / name / "checkpoint" / "best.pth"
    return out, stage


def steps(args: argparse.Namespace, n: int) -> List[str]:
    """The ``SOLVER.STEPS`` override of stage ``n`` from ``--steps`` (0: no drop)."""
    drop = args.steps[n - 1]
    return ["SOLVER.STEPS", f"[{drop}]" if drop else "[]"]


def train_phase(seed: int, phase: int, weights: Dict[str, Path], args: argparse.Namespace) -> Dict[str, Path]:
    """Train one seed's variants of ``phase`` (see PHASES) from its one stage-1 checkpoint into ``weights``.

    No run starts after ``--deadline`` minutes: it is skipped and said, with the runs that need it."""
    out, stage = seed_runner(seed, args)
    e1, e2, e3 = args.epochs
    wanted = set(args.variants)
    if phase == 2 and seed not in args.seeds[:args.ablation_seeds]:
        return weights

    def due(name: str, *needs: str) -> bool:
        """Whether ``name`` may start now: not trained yet, its inputs are there, the deadline has not passed."""
        if name in weights or any(n not in weights for n in needs):
            return False
        if args.deadline and (time.perf_counter() - args.start) / 60 > args.deadline:
            print(f"seed {seed}: {name} skipped (--deadline {args.deadline} min passed)", flush=True)
            return False
        return True

    if phase == 0:  # the cheap baselines before the method, so that a deadline cuts the method's extras
        if due("stage1"):
            weights["stage1"] = stage(1, "stage1", None, e1)
        if "adabn" in wanted and due("adabn", "stage1"):
            weights["adabn"] = stage(0, "adabn", weights["stage1"], 0, script="RVSL/adabn.py")
        if "control" in wanted and due("control", "stage1"):
            shutil.rmtree(out / "control", ignore_errors=True)
            shutil.copytree(out / "stage1", out / "control")
            run(["RVSL/stage1_trainer.py", "--resume", "-c", args.config, "DATASETS.DATA_PATH", str(args.data),
                 "MODE.SEED", str(seed), *args.opts, "OUTPUT_DIR", str(out / "control"), "SOLVER.MAX_EPOCHS",
                 str(e1 + e2 + e3), *steps(args, 1)], out / "runs.log", args.threads)
            weights["control"] = out / "control" / "checkpoint" / "best.pth"
        if wanted & {"rvsl", "rvsl_adabn", *ABLATIONS} and due("stage2", "stage1"):
            weights["stage2"] = stage(2, "stage2", weights["stage1"], e2)
        if wanted & {"rvsl", "rvsl_adabn"} and due("rvsl", "stage2"):
            weights["rvsl"] = stage(3, FOLDERS["rvsl"], weights["stage2"], e3)
        if "rvsl_adabn" in wanted and due("rvsl_adabn", "rvsl"):
            weights["rvsl_adabn"] = stage(0, "rvsl_adabn", weights["rvsl"], 0, script="RVSL/adabn.py")
    elif phase == 1:
        if "rvsl_no_stage2" in wanted and due("rvsl_no_stage2", "stage1"):
            weights["rvsl_no_stage2"] = stage(3, FOLDERS["rvsl_no_stage2"], weights["stage1"], e3)
        if "ceiling" in wanted and due("ceiling", "stage1"):
            weights["ceiling"] = stage(1, "ceiling", weights["stage1"], e2 + e3, "DATASETS.DATA_PATH",
                                       str(args.out / "ceiling_data"))
    else:
        for name, key in ABLATIONS.items():
            if name in wanted and due(name, "stage2"):
                weights[name] = stage(3, FOLDERS[name], weights["stage2"], e3, key, "0.0")
    return weights


# The folder of each trained run under OUT/seedS ("stage2" is the method's intermediate, not a variant).
FOLDERS = {"stage1": "stage1", "control": "control", "stage2": "stage2", "rvsl": "stage3",
           "rvsl_no_stage2": "stage3_no_stage2", "ceiling": "ceiling", **{name: f"stage3_{name}" for name in ABLATIONS}}


def trained_weights(seed: int, args: argparse.Namespace) -> Dict[str, Path]:
    """The checkpoints of one seed's runs that finished under OUT/seedS (``--report``, ``--resume``).

    A training run counts when its history reaches its last epoch (an interrupted one does not); AdaBN
    writes its file only when done."""
    out = args.out / f"seed{seed}"
    e1, e2, e3 = args.epochs
    last = {"stage1": e1, "control": e1 + e2 + e3, "stage2": e2, "ceiling": e2 + e3}
    found = {}
    for run_name, folder in FOLDERS.items():
        history = out / folder / "history.json"
        if history.is_file() and (out / folder / "checkpoint" / "best.pth").is_file():
            epochs = json.loads(history.read_text())["epochs"]
            if epochs and epochs[-1]["epoch"] == last.get(run_name, e3):
                found[run_name] = out / folder / "checkpoint" / "best.pth"
    found.update({v: out / v / "adabn.pth" for v in ("adabn", "rvsl_adabn") if (out / v / "adabn.pth").is_file()})
    return found


def variants_of(weights: Dict[str, Path], args: argparse.Namespace) -> Dict[str, Path]:
    """The checkpoints of ``--variants`` among ``weights``, in the order of VARIANTS."""
    return {v: weights[v] for v in VARIANTS if v in args.variants and v in weights}


def evaluate_seed(seed: int, weights: Dict[str, Path], args: argparse.Namespace) -> Dict[str, Dict[str, Dict]]:
    """Metrics of every checkpoint of one seed on every set of ``--sets`` (one process: ``--evaluate``)."""
    out = args.out / f"seed{seed}" / "eval"
    jobs = []
    for name in args.sets:
        for variant, weight in weights.items():
            vis = (["TEST.VIS", "True", "TEST.VIS_NUM", "8"]
                   if variant == "rvsl" and seed == args.seeds[0] and name == args.sets[-1] else [])
            jobs.append(["-t", "-c", args.config, "DATASETS.DATA_PATH", str(args.data), "TEST.DATA", SETS[name],
                         "TEST.WEIGHT", str(weight), "OUTPUT_DIR", str(out / name / variant), *args.opts, *vis])
    (out).mkdir(parents=True, exist_ok=True)
    (out / "jobs.json").write_text(json.dumps(jobs))
    run([str(Path(__file__).relative_to(ROOT)), "--evaluate", str(out / "jobs.json")], out / "eval.log", args.threads)
    return {name: {v: json.loads((out / name / v / "metrics.json").read_text()) for v in weights}
            for name in args.sets}


def evaluate_jobs(path: Path) -> None:
    """Run inference.py's evaluation for each command line of the JSON list at ``path``, in this process."""
    from rvsl.engine import launch
    from rvsl.engine.inference import add_test_flag, run_inference

    for argv in json.loads(path.read_text()):
        if launch(run_inference, "evaluation", argv=argv, add_arguments=add_test_flag) != 0:
            sys.exit(f"evaluation failed: {' '.join(argv)}")


def dehazed_figure(triplets: Path, path: Path, scale: int = 4) -> None:
    """Regroup inference's triplets.png (a row per image: input | dehazed | re-hazed) into three rows, enlarged."""
    import cv2
    import numpy as np

    image = cv2.imread(str(triplets))
    side = image.shape[1] // 3
    cells = [image[i:i + side] for i in range(0, image.shape[0], side)]
    rows = [np.concatenate([cell[:, k * side:(k + 1) * side] for cell in cells], axis=1) for k in range(3)]
    grid = cv2.resize(np.concatenate(rows, axis=0), None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    cv2.imwrite(str(path), grid)


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rank correlation (average ranks for ties); nan when either side is constant."""
    def ranks(values: Sequence[float]) -> List[float]:
        order = sorted(range(len(values)), key=lambda i: values[i])
        result = [0.0] * len(values)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
                j += 1
            for k in range(i, j + 1):
                result[order[k]] = (i + j) / 2
            i = j + 1
        return result
    rx, ry = ranks(x), ranks(y)
    mx, my = statistics.fmean(rx), statistics.fmean(ry)
    sx = sum((a - mx) ** 2 for a in rx) ** 0.5
    sy = sum((b - my) ** 2 for b in ry) ** 0.5
    if sx == 0 or sy == 0:
        return float("nan")
    return sum((a - mx) * (b - my) for a, b in zip(rx, ry)) / (sx * sy)


def lookup(metrics: Dict, name: str, epoch: int) -> Optional[float]:
    """The value of a ``source/.../metric`` name in one epoch's metrics (``last`` is the epoch number)."""
    return float(epoch) if name == "last" else metric_value(metrics, name)


def choice_study(histories: Sequence[Path], target_name: str) -> Dict[str, Dict[str, float]]:
    """Per candidate: mean Spearman correlation with ``target_name`` over epochs, and mean regret (mAP points)."""
    study: Dict[str, Dict[str, List[float]]] = {c: {"spearman": [], "regret": []} for c in CANDIDATES}
    for path in histories:
        epochs = json.loads(path.read_text())["epochs"]
        target = [lookup(e["metrics"], target_name, e["epoch"]) for e in epochs]
        for candidate in CANDIDATES:
            values = [lookup(e["metrics"], candidate, e["epoch"]) for e in epochs]
            if None in values or None in target or len(values) < 2:
                continue
            study[candidate]["spearman"].append(spearman(values, target))
            chosen = max(range(len(values)), key=lambda i: (values[i], i))  # ties: the later epoch
            study[candidate]["regret"].append(100 * (max(target) - target[chosen]))
    return {c: {k: statistics.fmean(v) if v else float("nan") for k, v in s.items()} | {"runs": len(s["regret"])}
            for c, s in study.items()}


def chance_map(data: Path, test_set: str, draws: int = 500) -> Tuple[float, float]:
    """mAP of random rankings of ``test_set`` (mean and sd over draws): the floor of its table."""
    import numpy as np
    from rvsl.data.fvrid import scan_labelled
    from rvsl.evaluation import evaluate_rank

    query, gallery = (scan_labelled(str(data / f.rel)) for f in layout.eval_folders(test_set))
    ids = [np.array([(r.pid, r.camid) for r in part]) for part in (query, gallery)]
    rng = np.random.default_rng(0)
    maps = [evaluate_rank(rng.random((len(query), len(gallery)), dtype=np.float32), ids[0][:, 0], ids[1][:, 0],
                          ids[0][:, 1], ids[1][:, 1])[1] for _ in range(draws)]
    return float(np.mean(maps)), float(np.std(maps))


def mean_sd(values: Sequence[float]) -> str:
    """``mean +- sd`` in percent."""
    if not values:
        return "-"
    if len(values) == 1:
        return f"{100 * values[0]:6.2f}"
    return f"{100 * statistics.fmean(values):6.2f} +- {100 * statistics.stdev(values):4.2f}"


def paired(a: Sequence[float], b: Sequence[float]) -> Optional[Tuple[float, float, float]]:
    """Mean of the paired differences ``a - b`` (percent points) and its 95 % t-interval; None under 2 pairs."""
    diffs = [100 * (x - y) for x, y in zip(a, b)]
    if len(diffs) < 2:
        return None
    mean = statistics.fmean(diffs)
    half = T95.get(len(diffs) - 1, 1.96) * statistics.stdev(diffs) / len(diffs) ** 0.5
    return mean, mean - half, mean + half


def collect(metrics: Dict[int, Dict[str, Dict]]) -> Dict[str, Dict[str, List]]:
    """Per variant: ``seeds`` and, per ``branch`` / ``branch_rank1``, the per-seed values (in [0, 1]) of one set."""
    results: Dict[str, Dict[str, List]] = {}
    for seed, seed_metrics in metrics.items():
        for variant, m in seed_metrics.items():
            empty = {f"{b}{k}": [] for b in BRANCHES for k in ("", "_rank1")}
            row = results.setdefault(variant, {"seeds": [], **empty})
            row["seeds"].append(seed)
            for branch in BRANCHES:
                row[branch].append(m[branch]["mAP"])
                row[f"{branch}_rank1"].append(m[branch]["rank1"])
    return {v: results[v] for v in VARIANTS if v in results}


def print_table(name: str, results: Dict[str, Dict[str, List[float]]], chance: Tuple[float, float]) -> Dict:
    """The table of one evaluation set and the paired differences rvsl minus each variant; returns those."""
    print(f"\n{SETS[name]} ({name} split); random ranking: mAP {100 * chance[0]:.2f} +- {100 * chance[1]:.2f}")
    print(f"{'variant':<15} {'seeds':>5} " + " ".join(f"{b + ' mAP':>15} {b + ' R-1':>15}" for b in BRANCHES))
    for variant, row in results.items():
        print(f"{variant:<15} {len(row['seeds']):>5} "
              + " ".join(f"{mean_sd(row[b]):>15} {mean_sd(row[b + '_rank1']):>15}" for b in BRANCHES))
    diffs = {}
    if "rvsl" in results:
        print("paired difference, hazy mAP points: rvsl minus ... (mean [95 % t-interval over seeds])")
        method = dict(zip(results["rvsl"]["seeds"], results["rvsl"]["hazy"]))
        for variant, row in results.items():
            pairs = [(method[s], v) for s, v in zip(row["seeds"], row["hazy"]) if s in method]
            d = paired(*zip(*pairs)) if variant != "rvsl" and pairs else None
            if d is not None:
                diffs[variant] = {"mean": d[0], "low": d[1], "high": d[2], "seeds": len(pairs)}
                print(f"  {variant:<15} {d[0]:+6.2f} [{d[1]:+6.2f}, {d[2]:+6.2f}]  ({len(pairs)} seeds)")
    return diffs


def bar_chart(tables: Dict[str, Dict[str, Dict[str, List[float]]]], chance: Dict[str, Tuple[float, float]],
              path: Path, title: str) -> None:
    """Hazy-branch mAP per variant on each evaluation set: seed means, sd error bars, chance as dashed lines."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = [v for v in VARIANTS if any(v in t for t in tables.values())]
    fig, ax = plt.subplots(figsize=(10, 4))
    width = 0.8 / len(tables)
    for k, (name, results) in enumerate(tables.items()):
        xs = [i + (k - (len(tables) - 1) / 2) * width for i, v in enumerate(variants) if v in results]
        rows = [results[v]["hazy"] for v in variants if v in results]
        ax.bar(xs, [100 * statistics.fmean(r) for r in rows], width, capsize=3, label=f"{SETS[name]} ({name})",
               yerr=[100 * statistics.stdev(r) if len(r) > 1 else 0 for r in rows])
        ax.axhline(100 * chance[name][0], color=f"C{k}", linestyle="--", linewidth=1,
                   label=f"random ranking ({name})")
    ax.set_xticks(range(len(variants)), variants, rotation=30, ha="right")
    ax.set_ylabel("hazy-branch mAP (%)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--epochs", type=int, nargs=3, default=[28, 2, 14], metavar=("E1", "E2", "E3"),
                        help="epochs of stage 1, 2 and 3 (the control and the ceiling get E2 + E3 more)")
    parser.add_argument("--steps", type=int, nargs=3, default=[20, 0, 10], metavar=("S1", "S2", "S3"),
                        help="epoch of the learning-rate drop in stage 1, 2 and 3 (SOLVER.STEPS; 0: none; "
                             "default: %(default)s)")
    parser.add_argument("--data", type=Path, default=ROOT / "Datasets" / "demo")
    parser.add_argument("--config", default="configs/adaptation.yml")
    parser.add_argument("--out", type=Path, default=ROOT / "output" / "adaptation")
    parser.add_argument("--figure", type=Path, default=ROOT / "Fig" / "adaptation.png")
    parser.add_argument("--sets", nargs="+", choices=tuple(SETS), default=["dev", "test"],
                        help="evaluation sets (dev: REAL_FOGGY_DEV, for choices; test: REAL_FOGGY, to report)")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--ablation-seeds", type=int, default=None, metavar="N",
                        help="run the four ablations for the first N seeds only (default: all)")
    parser.add_argument("--deadline", type=float, default=0, metavar="MIN",
                        help="start no training run after MIN minutes (default 0: no limit); the skipped are said")
    parser.add_argument("--jobs", type=int, default=3, help="seeds trained at once (default %(default)s)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per run (default %(default)s)")
    parser.add_argument("--choice-study", action="store_true",
                        help="stage 3 validates on the dev split each epoch: how each SOLVER.BEST_METRIC "
                             "candidate tracks the dev mAP (the test split is not read in training)")
    parser.add_argument("--quick", action="store_true", help="1 epoch per stage: a smoke run, not a result")
    parser.add_argument("--resume", action="store_true",
                        help="keep what --out holds and train only the runs missing there (after --deadline cut "
                             "a run or it was interrupted; the same options), then evaluate all")
    parser.add_argument("--report", action="store_true",
                        help="train nothing: evaluate the checkpoints already under --out and report them")
    parser.add_argument("--evaluate", type=Path, help=argparse.SUPPRESS)  # internal: one seed's evaluations
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="extra KEY VALUE config overrides for every run")
    args = parser.parse_args()
    if args.quick:
        args.epochs, args.steps = [1, 1, 1], [0, 0, 0]
    if args.ablation_seeds is None:
        args.ablation_seeds = len(args.seeds)
    args.sets = [name for name in SETS if name in args.sets]  # dev first: the test split is read last
    return args


def main() -> None:
    args = parse_args()
    if args.evaluate:
        evaluate_jobs(args.evaluate)
        return
    if not (args.data / "FVRID_real").is_dir():
        sys.exit(f"no demo data at {args.data}: run 'make demo-data' first")
    if "dev" in args.sets and not all((args.data / f.rel).is_dir() for f in layout.eval_folders(SETS["dev"])):
        sys.exit(f"no dev split under {args.data}: regenerate it with Datasets/make_demo.py")
    if args.report:
        start = args.start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            per_seed = list(pool.map(lambda seed: evaluate_seed(seed, variants_of(trained_weights(seed, args), args),
                                                                args), args.seeds))
        return report(args, per_seed, start)
    if args.out.exists() and any(args.out.iterdir()):
        if not (args.out / "adaptation.log").is_file():
            sys.exit(f"{args.out} is not empty and holds no earlier adaptation run: choose another --out")
        if not args.resume:
            shutil.rmtree(args.out)
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "adaptation.log", "a", encoding="utf-8") as log:
        log.write(" ".join(sys.argv) + "\n")
    start = args.start = time.perf_counter()

    if "ceiling" in args.variants:
        ceiling_data(args.data, args.out)
    # phase by phase over all seeds (every seed's main variants first, the ablations last), so that what
    # --deadline cuts is the least important; then each seed's evaluation
    weights = {seed: trained_weights(seed, args) if args.resume else {} for seed in args.seeds}
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for phase, names in enumerate(PHASES):
            list(pool.map(lambda seed: train_phase(seed, phase, weights[seed], args), args.seeds))
            print(f"{', '.join(names)} trained after {time.perf_counter() - start:.0f} s", flush=True)
        per_seed = list(pool.map(lambda seed: evaluate_seed(seed, variants_of(weights[seed], args), args), args.seeds))
    report(args, per_seed, start)


def report(args: argparse.Namespace, per_seed: Sequence[Dict[str, Dict[str, Dict]]], start: float) -> None:
    """Tables, paired differences, OUT/adaptation.json and the figures from every seed's metrics."""
    minutes = (time.perf_counter() - start) / 60
    tables = {name: collect({seed: m[name] for seed, m in zip(args.seeds, per_seed)}) for name in args.sets}
    chance = {name: chance_map(args.data, SETS[name]) for name in args.sets}
    print(f"\n{len(args.seeds)} seed(s) {args.seeds}, epochs {args.epochs}, LR drops {args.steps}, "
          f"{args.config} {' '.join(args.opts)}; "
          f"{minutes:.1f} min with {args.jobs} seeds at once, {args.threads} thread(s) each")
    diffs = {name: print_table(name, tables[name], chance[name]) for name in args.sets}
    summary = {"seeds": args.seeds, "epochs": args.epochs, "steps": args.steps, "config": args.config,
               "opts": args.opts,
               "minutes": minutes, "sets": {n: SETS[n] for n in args.sets}, "chance_map": chance,
               "paired_rvsl_minus": diffs, **({"results": tables["test"]} if "test" in tables else {}),
               **({"dev": tables["dev"]} if "dev" in tables else {})}
    if args.choice_study:
        summary["choice"] = {stage: choice_study([args.out / f"seed{s}" / stage / "history.json" for s in args.seeds],
                                                 target) for stage, target in TARGETS.items()}
        for stage, table in summary["choice"].items():
            print(f"\ncheckpoint choice in {stage}: how each label-free candidate tracks the dev split's "
                  f"{TARGETS[stage]} over epochs")
            print(f"{'candidate':<24} {'Spearman':>9} {'regret (mAP points)':>20} {'runs':>5}")
            for candidate, row in table.items():
                print(f"{candidate:<24} {row['spearman']:9.2f} {row['regret']:20.2f} {row['runs']:5d}")
    (args.out / "adaptation.json").write_text(json.dumps(summary, indent=2) + "\n")
    bar_chart(tables, chance, args.figure, f"demo data, {len(args.seeds)} seeds, epochs {args.epochs}, "
                                          f"{args.config}, label-free checkpoint choice")
    written = [str(args.out / "adaptation.json"), str(args.figure)]
    triplets = args.out / f"seed{args.seeds[0]}" / "eval" / args.sets[-1] / "rvsl" / "vis" / "triplets.png"
    if triplets.is_file():
        dehazed = args.figure.with_name(args.figure.stem + "_dehazed.png")
        dehazed_figure(triplets, dehazed)
        written.append(f"{dehazed} ({SETS[args.sets[-1]]} query images: input / dehazed / re-hazed by the "
                       "method's stage-3 model, first seed)")
    print(f"\nwrote {', '.join(written)}")


if __name__ == "__main__":
    main()
