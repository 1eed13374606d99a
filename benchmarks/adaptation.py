"""Does label-free adaptation help? RVSL stages 1 -> 2 -> 3 against honest baselines, on the demo data.

Every model below is trained through the project's own command line and evaluated on the REAL_FOGGY
test set (hazy, clear and fused branches: mAP and rank-1). Every checkpoint is the label-free choice
of SOLVER.BEST_METRIC (the default; no real label is read to choose or chain it):

* ``stage1``    stage 1 alone (synthetic pairs with labels);
* ``control``   stage 1 continued for as many epochs as stages 2 and 3 add (is it just more training?);
* ``adabn``     stage 1 + AdaBN: the hazy branch's BatchNorm statistics re-estimated on the unlabelled
                real hazy training images (no label, no gradient);
* ``rvsl``      stage 1 -> 2 -> 3, the method;
* ``ceiling``   stage 1 continued with the real hazy TRAINING labels (supervised on real hazy images:
                the demo data has those labels; a real user does not). An upper reference, not a method.

Stages 2 and 3 validate every epoch, so each run's ``history.json`` also holds, per epoch, every
label-free checkpoint-choice candidate (the synthetic validation split, the real-image proxies) beside
the stage's labelled test mAP (REAL_CLEAR clear branch in stage 2, REAL_FOGGY hazy branch in stage 3)
that none of them may read; the script reports how well each candidate tracks it (Spearman correlation over epochs, and the test mAP lost by choosing with it instead of the best epoch).

    python benchmarks/adaptation.py                       # 3 seeds, about 21 min on 2 CPU cores
    python benchmarks/adaptation.py --seeds 0 --quick     # a smoke run

Results: OUT/adaptation.json, a table on stdout, a bar chart (``--figure``, default Fig/adaptation.png) and
the first seed's stage-3 dehazed images beside it (Fig/adaptation_dehazed.png).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from rvsl.engine.hooks import metric_value

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("stage1", "control", "adabn", "rvsl", "ceiling")
BRANCHES = ("hazy", "clear", "fusion")
CANDIDATES = ("syn_val/hazy/mAP", "syn_val/fusion/mAP", "real_proxy/cycle_psnr", "real_proxy/agreement",
              "real_proxy/knn_overlap", "last")
# What each stage's candidates are read against: its own labelled test set (stage 2: REAL_CLEAR, read by
# the clear branch; stage 3: REAL_FOGGY, read by the hazy branch), which none of them reads.
TARGETS = {"stage2": "test_labels/clear/mAP", "stage3": "test_labels/hazy/mAP"}
# The setting measured in the README: configs/demo.yml at 32 x 32, so three seeds fit in 30 min on 2 cores,
# with the demo's model and milestone as they were then (before the demo was made leaner for speed).
SIZE_OPTS = ["INPUT.SIZE_TRAIN", "[32, 32]", "INPUT.SIZE_TEST", "[32, 32]", "MODEL.LAST_STRIDE", "1",
             "MODEL.GEN_CHANNELS", "64", "MODEL.DISC_CHANNELS", "64", "SOLVER.STEPS", "[3]"]


def run(args: Sequence[str], log: Path) -> None:
    """Run ``python ARGS`` from the repository root; its output goes to ``log``; stop on failure."""
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(f"\n$ {' '.join(args)}\n")
        handle.flush()
        done = subprocess.run([sys.executable, *args], cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT,
                              env=dict(os.environ, PYTHONUNBUFFERED="1"))
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


def train_seed(seed: int, args: argparse.Namespace, log: Path) -> Dict[str, Path]:
    """Train every variant of one seed; returns the checkpoint of each."""
    out = args.out / f"seed{seed}"
    e1, e2, e3 = args.epochs
    common = ["-c", args.config, "DATASETS.DATA_PATH", str(args.data), "MODE.SEED", str(seed), *args.opts]
    stage = {n: out / f"stage{n}" for n in (1, 2, 3)}
    run(["RVSL/stage1_trainer.py", *common, "OUTPUT_DIR", str(stage[1]), "SOLVER.MAX_EPOCHS", str(e1)], log)
    best1 = stage[1] / "checkpoint" / "best.pth"
    run(["RVSL/stage2_trainer.py", *common, "OUTPUT_DIR", str(stage[2]), "MODEL.PRETRAIN_PATH", str(best1),
         "SOLVER.MAX_EPOCHS", str(e2), "SOLVER.EVAL_PERIOD", "1"], log)
    run(["RVSL/stage3_trainer.py", *common, "OUTPUT_DIR", str(stage[3]),
         "MODEL.PRETRAIN_PATH", str(stage[2] / "checkpoint" / "best.pth"), "SOLVER.MAX_EPOCHS", str(e3),
         "SOLVER.EVAL_PERIOD", "1"], log)
    control = out / "control"
    shutil.copytree(stage[1], control)
    run(["RVSL/stage1_trainer.py", "--resume", *common, "OUTPUT_DIR", str(control),
         "SOLVER.MAX_EPOCHS", str(e1 + e2 + e3)], log)
    run(["RVSL/adabn.py", *common, "TEST.WEIGHT", str(best1), "OUTPUT_DIR", str(out / "adabn")], log)
    ceiling = out / "ceiling"
    run(["RVSL/stage1_trainer.py", *common, "DATASETS.DATA_PATH", str(ceiling_data(args.data, args.out)),
         "OUTPUT_DIR", str(ceiling), "MODEL.PRETRAIN_PATH", str(best1), "SOLVER.MAX_EPOCHS", str(e2 + e3)], log)
    return {"stage1": best1, "control": control / "checkpoint" / "best.pth",
            "adabn": out / "adabn" / "adabn.pth", "rvsl": stage[3] / "checkpoint" / "best.pth",
            "ceiling": ceiling / "checkpoint" / "best.pth"}


def evaluate(weight: Path, out: Path, args: argparse.Namespace, log: Path, pictures: bool = False) -> Dict:
    """REAL_FOGGY metrics of one checkpoint (inference.py's metrics.json); ``pictures`` also writes out/vis/."""
    vis = ["TEST.VIS", "True", "TEST.VIS_NUM", "8"] if pictures else []
    run(["RVSL/inference.py", "-t", "-c", args.config, "DATASETS.DATA_PATH", str(args.data), "TEST.DATA",
         "REAL_FOGGY", "TEST.WEIGHT", str(weight), "OUTPUT_DIR", str(out), *args.opts, *vis], log)
    return json.loads((out / "metrics.json").read_text())


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


def chance_map(data: Path, draws: int = 500) -> Tuple[float, float]:
    """mAP of random rankings of the REAL_FOGGY test set (mean and sd over draws): the floor of the table."""
    import numpy as np
    from rvsl.data import layout
    from rvsl.data.fvrid import scan_labelled
    from rvsl.evaluation import evaluate_rank

    query, gallery = (scan_labelled(str(data / f.rel)) for f in layout.eval_folders(layout.REAL_HAZY))
    ids = [np.array([(r.pid, r.camid) for r in part]) for part in (query, gallery)]
    rng = np.random.default_rng(0)
    maps = [evaluate_rank(rng.random((len(query), len(gallery)), dtype=np.float32), ids[0][:, 0], ids[1][:, 0],
                          ids[0][:, 1], ids[1][:, 1])[1] for _ in range(draws)]
    return float(np.mean(maps)), float(np.std(maps))


def mean_sd(values: Sequence[float]) -> str:
    """``mean +- sd`` in percent."""
    if len(values) == 1:
        return f"{100 * values[0]:6.2f}"
    return f"{100 * statistics.fmean(values):6.2f} +- {100 * statistics.stdev(values):4.2f}"


def bar_chart(results: Dict[str, Dict[str, List[float]]], chance: float, path: Path, title: str) -> None:
    """Mean REAL_FOGGY mAP per variant and branch, the seeds' standard deviation as error bars, chance as a line."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / len(BRANCHES)
    for b, branch in enumerate(BRANCHES):
        means = [100 * statistics.fmean(results[v][branch]) for v in VARIANTS]
        sds = [100 * statistics.stdev(results[v][branch]) if len(results[v][branch]) > 1 else 0 for v in VARIANTS]
        ax.bar([i + (b - 1) * width for i in range(len(VARIANTS))], means, width, yerr=sds, capsize=3, label=branch)
    ax.axhline(100 * chance, color="grey", linestyle="--", linewidth=1, label="random ranking")
    ax.set_xticks(range(len(VARIANTS)), VARIANTS)
    ax.set_ylabel("REAL_FOGGY mAP (%)")
    ax.set_title(title, fontsize=9)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, nargs=3, default=[16, 2, 6], metavar=("E1", "E2", "E3"),
                        help="epochs of stage 1, 2 and 3 (the control and the ceiling get E2 + E3 more)")
    parser.add_argument("--data", type=Path, default=ROOT / "Datasets" / "demo")
    parser.add_argument("--config", default="configs/demo.yml")
    parser.add_argument("--out", type=Path, default=ROOT / "output" / "adaptation")
    parser.add_argument("--figure", type=Path, default=ROOT / "Fig" / "adaptation.png")
    parser.add_argument("--quick", action="store_true", help="1 epoch per stage: a smoke run, not a result")
    parser.add_argument("opts", nargs=argparse.REMAINDER,
                        help=f"extra KEY VALUE config overrides for every run, after {' '.join(SIZE_OPTS)}")
    args = parser.parse_args()
    args.opts = SIZE_OPTS + args.opts
    if args.quick:
        args.epochs = [1, 1, 1]
    if not (args.data / "FVRID_real").is_dir():
        sys.exit(f"no demo data at {args.data}: run 'make demo-data' first")
    if args.out.exists() and any(args.out.iterdir()):
        if not (args.out / "runs.log").is_file():
            sys.exit(f"{args.out} is not empty and holds no earlier adaptation run (runs.log): choose another --out")
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    log = args.out / "runs.log"
    start = time.perf_counter()
    results = {v: {f"{b}{m}": [] for b in BRANCHES for m in ("", "_rank1")} for v in VARIANTS}
    for seed in args.seeds:
        weights = train_seed(seed, args, log)
        for variant, weight in weights.items():
            pictures = variant == "rvsl" and seed == args.seeds[0]
            metrics = evaluate(weight, args.out / f"seed{seed}" / "eval" / variant, args, log, pictures)
            for branch in BRANCHES:
                results[variant][branch].append(metrics[branch]["mAP"])
                results[variant][f"{branch}_rank1"].append(metrics[branch]["rank1"])
        print(f"seed {seed} done after {time.perf_counter() - start:.0f} s", flush=True)
    minutes = (time.perf_counter() - start) / 60
    study = {stage: choice_study([args.out / f"seed{s}" / stage / "history.json" for s in args.seeds], target)
             for stage, target in TARGETS.items()}

    chance = chance_map(args.data)
    print(f"\nREAL_FOGGY test set, {len(args.seeds)} seed(s) {args.seeds}, epochs {args.epochs}, "
          f"{args.config} {' '.join(args.opts)}; {minutes:.1f} min; random ranking: mAP "
          f"{100 * chance[0]:.2f} +- {100 * chance[1]:.2f}")
    print(f"{'variant':<9} " + " ".join(f"{b + ' mAP':>17} {b + ' R-1':>17}" for b in BRANCHES))
    for variant in VARIANTS:
        print(f"{variant:<9} " + " ".join(f"{mean_sd(results[variant][b]):>17} "
                                          f"{mean_sd(results[variant][b + '_rank1']):>17}" for b in BRANCHES))
    for stage, table in study.items():
        print(f"\ncheckpoint choice in {stage}: how each label-free candidate tracks {TARGETS[stage]} over epochs")
        print(f"{'candidate':<24} {'Spearman':>9} {'regret (mAP points)':>20} {'runs':>5}")
        for candidate, row in table.items():
            print(f"{candidate:<24} {row['spearman']:9.2f} {row['regret']:20.2f} {row['runs']:5d}")
    (args.out / "adaptation.json").write_text(json.dumps(
        {"seeds": args.seeds, "epochs": args.epochs, "minutes": minutes, "results": results, "choice": study,
         "chance_map": chance},
        indent=2) + "\n")
    bar_chart(results, chance[0], args.figure, f"demo data, {len(args.seeds)} seeds, epochs {args.epochs}, "
                                    "label-free checkpoint choice")
    dehazed = args.figure.with_name(args.figure.stem + "_dehazed.png")
    dehazed_figure(args.out / f"seed{args.seeds[0]}" / "eval" / "rvsl" / "vis" / "triplets.png", dehazed)
    print(f"\nwrote {args.out / 'adaptation.json'}, {args.figure} and {dehazed} (REAL_FOGGY query images: "
          "input / dehazed / re-hazed by the method's stage-3 model, first seed)")


if __name__ == "__main__":
    main()
