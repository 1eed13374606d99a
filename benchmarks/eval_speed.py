"""Speed of the ranking evaluation at VeRi-Wild test sizes, against a plain per-query full-sort reference.

Random 2048-d features with identity structure (a centre per identity plus Gaussian noise, several
cameras). For each size it times, best of ``--repeat`` runs:

* ``compute_distance``: the full Q x G squared Euclidean distance matrix (float32);
* ``evaluate_rank``: CMC/mAP/mINP from that matrix;
* ``evaluate_features``: both fused, chunk by chunk, never holding the matrix;
* the plain reference (numpy distances, then per query a stable argsort of the whole row) on the first
  ``--ref-queries`` queries, extrapolated linearly to all queries (labelled as such);

and checks that ours and the reference agree on that subset. Usage:

    python benchmarks/eval_speed.py                    # small: 3,000 x 38,861
    python benchmarks/eval_speed.py --sizes small large --device cuda
    python benchmarks/eval_speed.py --quick            # a reduced smoke run
"""

import argparse
import gc
import time
from typing import Callable, Dict, List, Tuple

import numpy as np
import torch

from rvsl.evaluation import compute_distance, evaluate_features, evaluate_rank

SIZES: Dict[str, Tuple[int, int, int]] = {  # name: (queries, gallery, identities), VeRi-Wild test splits
    "small": (3000, 38861, 3000),
    "large": (10000, 128517, 10000),
    "quick": (500, 6000, 500),
}
NUM_CAMERAS = 174  # VeRi-Wild


def make_problem(num_q: int, num_g: int, num_ids: int, dim: int, noise: float, device: torch.device,
                 seed: int = 0) -> Dict[str, torch.Tensor]:
    """Features = identity centre + noise; every query identity appears in the gallery."""
    gen = torch.Generator().manual_seed(seed)
    q_pids = torch.arange(num_q) % num_ids
    g_pids = torch.cat([torch.arange(num_ids), torch.randint(0, num_ids, (num_g - num_ids,), generator=gen)])
    g_pids = g_pids[torch.randperm(num_g, generator=gen)]
    q_camids = torch.randint(0, NUM_CAMERAS, (num_q,), generator=gen)
    g_camids = torch.randint(0, NUM_CAMERAS, (num_g,), generator=gen)
    centres = torch.randn(num_ids, dim, generator=gen)
    qf = centres[q_pids] + noise * torch.randn(num_q, dim, generator=gen)
    gf = centres[g_pids] + noise * torch.randn(num_g, dim, generator=gen)
    out = dict(qf=qf, gf=gf, q_pids=q_pids, g_pids=g_pids, q_camids=q_camids, g_camids=g_camids)
    return {k: v.to(device) for k, v in out.items()}


def plain_distance(qf: np.ndarray, gf: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances the textbook way: |q|^2 + |g|^2 - 2 q g^T in numpy."""
    return (qf ** 2).sum(1)[:, None] + (gf ** 2).sum(1)[None, :] - 2.0 * qf @ gf.T


def plain_rank(dist: np.ndarray, q_pids: np.ndarray, g_pids: np.ndarray, q_camids: np.ndarray,
               g_camids: np.ndarray, max_rank: int = 50) -> Tuple[np.ndarray, float, float]:
    """Per query: stable argsort of the full row, drop same-id-same-camera entries, then CMC/AP/INP."""
    cmcs, aps, inps = [], [], []
    for i in range(dist.shape[0]):
        order = np.argsort(dist[i], kind="stable")
        keep = ~((g_pids[order] == q_pids[i]) & (g_camids[order] == q_camids[i]))
        match = (g_pids[order] == q_pids[i])[keep]
        if not match.any():
            continue
        ranks = np.flatnonzero(match) + 1
        cmc = np.zeros(max_rank)
        if ranks[0] <= max_rank:
            cmc[ranks[0] - 1:] = 1.0
        cmcs.append(cmc)
        aps.append(np.mean(np.arange(1, ranks.size + 1) / ranks))
        inps.append(ranks.size / ranks[-1])
    return np.mean(cmcs, axis=0), float(np.mean(aps)), float(np.mean(inps))


class Timing:
    """Best wall-clock seconds and best process CPU seconds (all threads) over the repeats."""

    def __init__(self) -> None:
        self.wall = float("inf")
        self.cpu = float("inf")

    def scaled(self, factor: float) -> "Timing":
        """The same timing multiplied by ``factor`` (for extrapolation)."""
        out = Timing()
        out.wall, out.cpu = self.wall * factor, self.cpu * factor
        return out

    def __add__(self, other: "Timing") -> "Timing":
        out = Timing()
        out.wall, out.cpu = self.wall + other.wall, self.cpu + other.cpu
        return out


def best_time(fn: Callable[[], object], repeat: int, device: torch.device) -> Tuple[Timing, object]:
    """Time ``repeat`` calls (synchronising CUDA); keep the best wall and CPU times, and the last result."""
    timing, result = Timing(), None
    for _ in range(repeat):
        result = None
        gc.collect()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        timing.wall = min(timing.wall, time.perf_counter() - wall)
        timing.cpu = min(timing.cpu, time.process_time() - cpu)
    return timing, result


def agree(a: Tuple[np.ndarray, float, float], b: Tuple[np.ndarray, float, float]) -> float:
    """Largest absolute difference between two (cmc, mAP, mINP) results."""
    return max(float(np.abs(a[0] - b[0]).max()), abs(a[1] - b[1]), abs(a[2] - b[2]))


def ratio_line(label: str, reference: "Timing", ours: "Timing") -> str:
    """One speed-up line: reference / ours in wall time and in CPU time."""
    return f"    {label:<24}{reference.wall / ours.wall:7.1f}x {reference.cpu / ours.cpu:7.1f}x"


def run_size(name: str, args: argparse.Namespace, device: torch.device) -> List[str]:
    """Time one size and return its lines of the results table."""
    num_q, num_g, num_ids = SIZES[name]
    p = make_problem(num_q, num_g, num_ids, args.dim, args.noise, device)
    ids = (p["q_pids"], p["g_pids"], p["q_camids"], p["g_camids"])
    lines = [f"== {name}: {num_q:,} queries x {num_g:,} gallery, d={args.dim}, device={device}, "
             f"torch threads={torch.get_num_threads()}, best of {args.repeat}"]

    t_fused, fused = best_time(lambda: evaluate_features(p["qf"], p["gf"], *ids, chunk_size=args.fused_chunk),
                               args.repeat, device)
    if not args.fused_only:
        t_dist, dist = best_time(lambda: compute_distance(p["qf"], p["gf"], chunk_size=args.dist_chunk),
                                 args.repeat, device)
        t_rank, ours = best_time(lambda: evaluate_rank(dist, *ids, chunk_size=args.chunk), args.repeat, device)
    # plain reference on a subset of queries (CPU numpy, as a plain implementation would be)
    n_ref = min(args.ref_queries, num_q)
    qf_np, gf_np = p["qf"][:n_ref].cpu().numpy(), p["gf"].cpu().numpy()
    ids_np = [x.cpu().numpy() for x in ids]
    ref_ids = (ids_np[0][:n_ref], ids_np[1], ids_np[2][:n_ref], ids_np[3])
    t_ref_dist, ref_dist = best_time(lambda: plain_distance(qf_np, gf_np), 1, torch.device("cpu"))
    t_ref_rank, ref = best_time(lambda: plain_rank(ref_dist, *ref_ids), 1, torch.device("cpu"))
    sub_dist = compute_distance(p["qf"][:n_ref], p["gf"])
    sub_ours = evaluate_rank(sub_dist, ids[0][:n_ref], ids[1], ids[2][:n_ref], ids[3])
    same_rows = plain_rank(sub_dist.cpu().numpy(), *ref_ids)
    scale = num_q / n_ref

    lines.append(f"  metrics (all queries, fused): mAP {fused[1]:.4f}  rank-1 {fused[0][0]:.4f}  mINP {fused[2]:.4f}")
    if not args.fused_only:
        lines.append("  evaluate_features vs compute_distance + evaluate_rank, max |diff| of cmc/mAP/mINP: "
                     f"{agree(fused, ours):.1e}")
    lines.append(f"  subset of {n_ref} queries: ours vs plain reference on the same distance rows, "
                 f"max |diff| {agree(sub_ours, same_rows):.1e}; vs reference's own numpy distances "
                 f"{agree(sub_ours, ref):.1e}; max |distance diff| "
                 f"{float(np.abs(sub_dist.cpu().numpy() - ref_dist).max()):.2e} (scale {float(ref_dist.mean()):.0f})")
    lines.append(f"  {'step':<40}{'wall s':>9}{'CPU s':>9}")

    def row(label: str, t: Timing, note: str = "") -> None:
        lines.append(f"  {label:<40}{t.wall:>9.3f}{t.cpu:>9.3f}{note}")

    if not args.fused_only:
        row("ours: compute_distance", t_dist)
        row("ours: evaluate_rank", t_rank)
        row("ours: distance + ranking", t_dist + t_rank)
    row("ours: evaluate_features (fused)", t_fused)
    row(f"plain reference, {n_ref} queries: distance", t_ref_dist)
    row(f"plain reference, {n_ref} queries: ranking", t_ref_rank)
    ref_total = (t_ref_dist + t_ref_rank).scaled(scale)
    row(f"plain reference EXTRAPOLATED x{scale:.0f}: dist.", t_ref_dist.scaled(scale))
    row(f"plain reference EXTRAPOLATED x{scale:.0f}: rank.", t_ref_rank.scaled(scale))
    row(f"plain reference EXTRAPOLATED x{scale:.0f}: total", ref_total)
    lines.append("  speed-up = extrapolated plain reference / ours (wall; CPU):")
    if not args.fused_only:
        rank_ref = t_ref_rank.scaled(scale)
        total = t_dist + t_rank
        lines.append(ratio_line("ranking only", rank_ref, t_rank))
        lines.append(ratio_line("distance + ranking", ref_total, total))
    lines.append(ratio_line("fused", ref_total, t_fused))
    return lines


def main() -> None:
    """Parse arguments, run the requested sizes and print the results table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["small"], choices=["small", "large"])
    parser.add_argument("--quick", action="store_true", help="a reduced 500 x 6,000 problem, one repeat")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda[:N]")
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--noise", type=float, default=3.0, help="per-dimension noise around unit-variance centres")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--ref-queries", type=int, default=200)
    parser.add_argument("--chunk", type=int, default=512, help="query rows per evaluate_rank chunk")
    parser.add_argument("--fused-chunk", type=int, default=1024, help="query rows per evaluate_features chunk")
    parser.add_argument("--dist-chunk", type=int, default=1024, help="query rows per compute_distance chunk")
    parser.add_argument("--fused-only", action="store_true", help="skip the full distance matrix (large on CPU)")
    args = parser.parse_args()
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else ("cpu" if args.device == "auto" else args.device))
    sizes = ["quick"] if args.quick else args.sizes
    if args.quick:
        args.repeat = 1
    for name in sizes:
        print("\n".join(run_size(name, args, device)), flush=True)
    print("anchors (fast-reid's compiled Cython evaluator) and the target: README, section 'Evaluation'")


if __name__ == "__main__":
    main()
