"""Ranking metrics (CMC, mAP, mINP) for the market/VeRi protocol, without sorting the gallery.

For one query, gallery entries with the same identity AND the same camera are removed (junk), and the
rank of every remaining true match is 1 + the number of remaining gallery entries that come before it
in the order (distance, gallery index): equal distances are broken by the smaller gallery index, the
same order as a stable sort. Only entries not farther than the query's hardest true match can come
before a match, so a chunk of queries is reduced to those candidates (one comparison pass). Each
candidate gets an int64 key (row, distance bits, gallery index) ordered like that order; the few true
matches' keys are sorted, candidates are binned among them by binary search, and the cumulative
histogram gives every match's rank. Cost: one pass over the chunk plus O(candidates x log matches).

Metrics, per query with at least one true match (n matches at ranks r_1 < ... < r_n):
AP = mean_i (i / r_i); INP = n / r_n (Ye et al., "Deep Learning for Person Re-identification: A Survey
and Outlook", TPAMI 2021); CMC_k = [r_1 <= k]. All are averaged over such queries.
"""

import contextlib
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Callable, Iterator, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from .distance import finish_distance, matmul_into, prepare_features

logger = logging.getLogger(__name__)

ArrayLike = Union[np.ndarray, torch.Tensor]

# Query rows per chunk when ranking a given matrix (512 x 128,517 float32 distances: 263 MB) and when
# computing and ranking distances together (1024 rows: 526 MB, large enough for an efficient matmul).
DEFAULT_CHUNK = 512
FUSED_CHUNK = 1024


def as_tensor(x: ArrayLike, device: Optional[torch.device] = None) -> torch.Tensor:
    """A torch view of a numpy array or tensor (no copy when possible), optionally moved to ``device``."""
    if isinstance(x, np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(x))
    elif isinstance(x, torch.Tensor):
        t = x.detach()
    else:
        t = torch.as_tensor(x)
    return t if device is None else t.to(device)


class RankAccumulator:
    """Sums AP, INP and first-match ranks over chunks of query rows; gallery ids are fixed up front."""

    def __init__(self, g_pids: torch.Tensor, g_camids: torch.Tensor, max_rank: int) -> None:
        if max_rank < 1:
            raise ValueError(f"max_rank must be >= 1, got {max_rank}")
        self.device = g_pids.device
        self.g_pids = g_pids.long()
        self.g_camids = g_camids.long()
        self.num_gallery = int(g_pids.numel())
        self.col_bits = max(1, (self.num_gallery - 1).bit_length())
        if self.col_bits > 30:
            raise ValueError(f"gallery of {self.num_gallery} entries is too large (at most 2^30)")
        self.max_rank = max_rank
        # gallery grouped by identity: the gallery entries of pid p are order[start(p):end(p)]
        self.order = torch.argsort(self.g_pids, stable=True)
        self.sorted_pids = self.g_pids[self.order]
        self.sum_ap = 0.0
        self.sum_inp = 0.0
        self.first_hist = torch.zeros(max_rank + 1, dtype=torch.int64, device=self.device)
        self.num_valid = 0
        self.num_queries = 0
        self._lock = threading.Lock()  # add() may run in several threads (CPU ranking)

    def add(self, dist: torch.Tensor, q_pids: torch.Tensor, q_camids: torch.Tensor) -> None:
        """Rank one chunk: ``dist`` is C x G (rows of queries), ``q_pids``/``q_camids`` have C entries."""
        max_rows = 1 << (31 - self.col_bits)  # row, value and column must pack into 63 bits
        for s in range(0, dist.shape[0], max_rows):
            part = self._rank(dist[s:s + max_rows], q_pids[s:s + max_rows].long(), q_camids[s:s + max_rows].long())
            with self._lock:
                self.num_queries += min(max_rows, dist.shape[0] - s)
                if part is not None:
                    self.sum_ap += part[0]
                    self.sum_inp += part[1]
                    self.first_hist += part[2]
                    self.num_valid += part[3]

    def _rank(self, dist: torch.Tensor, q_pids: torch.Tensor,
              q_camids: torch.Tensor) -> Optional[Tuple[float, float, torch.Tensor, int]]:
        """(sum of AP, sum of INP, first-rank histogram, queries with a match) of a chunk small enough that
        (row, value, column) keys fit in an int64; None when no query of the chunk has a true match."""
        num_rows, num_g = dist.shape
        if num_rows == 0 or num_g == 0:
            return None
        if dist.dtype != torch.float64:
            dist = dist.float()
        dist = dist.contiguous()
        # 1. each query's same-identity gallery entries (padded to the chunk's largest group)
        start = torch.searchsorted(self.sorted_pids, q_pids, right=False)
        count = torch.searchsorted(self.sorted_pids, q_pids, right=True) - start
        width = int(count.max())
        if width == 0:
            return None
        offsets = torch.arange(width, device=self.device)
        in_group = offsets[None, :] < count[:, None]
        group_idx = self.order[(start[:, None] + offsets[None, :]).clamp_(max=num_g - 1)]
        same_cam = self.g_camids[group_idx] == q_camids[:, None]
        true_match = in_group & ~same_cam
        if not bool(true_match.any()):
            return None
        group_dist = dist.gather(1, group_idx)
        # 2. hardest true match per query; queries without one get -inf, so they keep no candidates
        hardest = group_dist.masked_fill(~true_match, float("-inf")).max(dim=1).values
        if bool(torch.isnan(hardest).any()):
            raise ValueError("distmat has NaN distances for true matches")
        # 3. candidates: entries not farther than the row's hardest match; they include every entry that
        #    can precede a match, all matches, and some junk (removed below)
        flat = _flat_nonzero(dist <= hardest[:, None])
        rows = torch.div(flat, num_g, rounding_mode="floor")
        cols = flat - rows * num_g
        cand_code, group_code = _value_codes(dist.view(-1)[flat], group_dist)
        row_shift = 32 + self.col_bits
        cand_key = (rows << row_shift) | (cand_code << self.col_bits) | cols
        rows_2d = torch.arange(num_rows, device=self.device)[:, None].expand_as(group_idx)
        group_key = (rows_2d << row_shift) | (group_code << self.col_bits) | group_idx
        # 4. rank of each true match = candidates of its row with key <= its key, minus junk among them.
        #    Keys order by (row, distance, gallery index); every earlier row's keys are smaller.
        match_key = torch.sort(group_key[true_match]).values
        num_m = match_key.numel()
        hist = torch.bincount(torch.searchsorted(match_key, cand_key), minlength=num_m + 1)
        per_row = torch.bincount(rows, minlength=num_rows)
        junk = in_group & same_cam & (group_dist <= hardest[:, None])
        if bool(junk.any()):
            hist -= torch.bincount(torch.searchsorted(match_key, group_key[junk]), minlength=num_m + 1)
            per_row -= torch.bincount(rows_2d[junk], minlength=num_rows)
        m_rows = match_key >> row_shift
        rows_before = torch.cumsum(per_row, 0) - per_row
        m_rank = (torch.cumsum(hist, 0)[:num_m] - rows_before[m_rows]).double()  # 1-based, ascending per row
        # 5. per-match ordinal i (1..n) within its row, then AP, INP and CMC
        n_match = torch.bincount(m_rows, minlength=num_rows)
        m_start = torch.cumsum(n_match, 0) - n_match
        ordinal = torch.arange(num_m, device=self.device) - m_start[m_rows] + 1
        precision_sum = torch.zeros(num_rows, dtype=torch.float64, device=self.device)
        precision_sum.index_add_(0, m_rows, ordinal.double() / m_rank)
        valid = n_match > 0
        n_valid = n_match[valid]
        first_rank = m_rank[m_start[valid]]
        last_rank = m_rank[m_start[valid] + n_valid - 1]
        hist = torch.bincount(first_rank.long().clamp_(max=self.max_rank + 1) - 1, minlength=self.max_rank + 1)
        return (float((precision_sum[valid] / n_valid).sum()), float((n_valid / last_rank).sum()), hist,
                int(n_valid.numel()))

    def result(self) -> Tuple[np.ndarray, float, float]:
        """(cmc, mAP, mINP) over the queries added so far; ValueError if none had a true match."""
        if self.num_valid == 0:
            raise ValueError(
                f"no query has a true match in the gallery (checked {self.num_queries} queries: every "
                "same-identity gallery entry is missing or shares the query's camera)")
        skipped = self.num_queries - self.num_valid
        if skipped:
            logger.info("%d of %d queries have no true match in the gallery and were skipped",
                        skipped, self.num_queries)
        cmc = (torch.cumsum(self.first_hist[: self.max_rank], 0).double() / self.num_valid).cpu().numpy()
        return cmc.astype(np.float64), self.sum_ap / self.num_valid, self.sum_inp / self.num_valid


@contextlib.contextmanager
def _intra_op_threads(num: int) -> Iterator[None]:
    """Temporarily set torch's intra-op thread count."""
    before = torch.get_num_threads()
    if before != num:
        torch.set_num_threads(num)
    try:
        yield
    finally:
        if before != num:
            torch.set_num_threads(before)


def _run_parallel(device: torch.device, jobs: Sequence[Callable[[], None]]) -> None:
    """Run ranking jobs. On CPU: one Python thread per torch thread, each job single-threaded inside.

    Many small parallel torch ops end in a barrier each; on a shared CPU a descheduled OpenMP thread
    stalls every barrier (measured 7-10x slower on the 2-core development machine under load), while
    independent single-threaded jobs degrade gracefully and still use all cores when they are free.
    torch's intra-op thread count is 1 while the jobs run (it is process-wide) and is restored after.
    """
    workers = torch.get_num_threads()
    if device.type != "cpu" or workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            job()
        return
    with _intra_op_threads(1), ThreadPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
        for future in [pool.submit(job) for job in jobs]:
            future.result()


def _flat_nonzero(mask: torch.Tensor) -> torch.Tensor:
    """Flat indices of the True entries of a contiguous mask (numpy's scan is faster on CPU)."""
    if mask.device.type == "cpu":
        return torch.from_numpy(np.flatnonzero(mask.numpy()))
    return torch.nonzero(mask.view(-1)).squeeze(1)


def _value_codes(values: torch.Tensor, group_dist: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Non-negative int64 codes below 2^32 that order like the distances (equal distances, equal codes).

    float32: the IEEE bit pattern made monotone; float64: the dense rank among the values involved.
    """
    if values.dtype == torch.float32:
        return _monotone_bits(values), _monotone_bits(group_dist)
    both = torch.cat([values, group_dist.reshape(-1)])
    codes = torch.unique(both, sorted=True, return_inverse=True)[1]
    return codes[: values.numel()], codes[values.numel():].view_as(group_dist)


def _monotone_bits(x: torch.Tensor) -> torch.Tensor:
    """float32 -> int64 in [0, 2^32) with the same order (-0.0 and 0.0 map alike; NaN is never compared)."""
    bits = (x + 0.0).view(torch.int32)  # + 0.0 turns -0.0 into 0.0
    bits = torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits)
    return bits.long() + (1 << 31)


def _check_ids(name: str, ids: torch.Tensor, length: int) -> torch.Tensor:
    """Flatten an id vector and check its length against the distance matrix."""
    ids = ids.reshape(-1)
    if ids.numel() != length:
        raise ValueError(f"{name} has {ids.numel()} entries but the distance matrix needs {length}")
    if ids.is_floating_point():
        raise ValueError(f"{name} must hold integers, got {ids.dtype}")
    return ids.long()


def _checked_ids(device: torch.device, query: Tuple[ArrayLike, ArrayLike], gallery: Tuple[ArrayLike, ArrayLike],
                 num_q: int, num_g: int, chunk_size: int) -> Tuple[torch.Tensor, ...]:
    """Query pids and cameras, gallery pids and cameras as checked 1-D tensors on ``device``."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    return (_check_ids("q_pids", as_tensor(query[0], device), num_q),
            _check_ids("q_camids", as_tensor(query[1], device), num_q),
            _check_ids("g_pids", as_tensor(gallery[0], device), num_g),
            _check_ids("g_camids", as_tensor(gallery[1], device), num_g))


def evaluate_rank(
    distmat: ArrayLike,
    q_pids: ArrayLike,
    g_pids: ArrayLike,
    q_camids: ArrayLike,
    g_camids: ArrayLike,
    max_rank: int = 50,
    chunk_size: int = DEFAULT_CHUNK,
) -> Tuple[np.ndarray, float, float]:
    """CMC (length ``max_rank``), mAP and mINP of a Q x G distance matrix; see the module docstring.

    Accepts numpy arrays or tensors; computes on the distance matrix's device. CMC entries past the
    gallery size repeat the last value (1.0). Memory beyond the inputs is O(chunk_size x G).
    """
    dist = as_tensor(distmat)
    if dist.dim() != 2:
        raise ValueError(f"distmat must be 2-D (queries x gallery), got shape {tuple(dist.shape)}")
    if not dist.is_floating_point():
        dist = dist.float()
    device = dist.device
    num_q, num_g = dist.shape
    q_pids_t, q_cams_t, g_pids_t, g_cams_t = _checked_ids(device, (q_pids, q_camids), (g_pids, g_camids),
                                                          num_q, num_g, chunk_size)
    acc = RankAccumulator(g_pids_t, g_cams_t, max_rank)
    _run_parallel(device, [partial(acc.add, dist[s:s + chunk_size], q_pids_t[s:s + chunk_size],
                                   q_cams_t[s:s + chunk_size]) for s in range(0, num_q, chunk_size)])
    return acc.result()


def evaluate_features(
    qf: torch.Tensor,
    gf: torch.Tensor,
    q_pids: ArrayLike,
    g_pids: ArrayLike,
    q_camids: ArrayLike,
    g_camids: ArrayLike,
    metric: str = "euclidean",
    max_rank: int = 50,
    chunk_size: int = FUSED_CHUNK,
) -> Tuple[np.ndarray, float, float]:
    """``evaluate_rank(compute_distance(qf, gf, metric), ...)`` without holding the Q x G matrix.

    Distances are computed and ranked one chunk of queries at a time, on the features' device.
    """
    qf, gf, q_sq, g_sq = prepare_features(qf, gf, metric)
    device = qf.device
    num_q, num_g = qf.shape[0], gf.shape[0]
    q_pids_t, q_cams_t, g_pids_t, g_cams_t = _checked_ids(device, (q_pids, q_camids), (g_pids, g_camids),
                                                          num_q, num_g, chunk_size)
    acc = RankAccumulator(g_pids_t, g_cams_t, max_rank)
    buffer = torch.empty((min(chunk_size, num_q), num_g), dtype=torch.float32, device=device)
    parts = max(1, torch.get_num_threads()) if device.type == "cpu" else 1

    def finish_and_rank(rows: torch.Tensor, s: int, e: int) -> None:
        q_sq_part = q_sq[s:e] if q_sq is not None else None
        acc.add(finish_distance(rows, q_sq_part, g_sq, metric), q_pids_t[s:e], q_cams_t[s:e])

    for s in range(0, num_q, chunk_size):
        e = min(s + chunk_size, num_q)
        rows = buffer[: e - s]
        matmul_into(qf[s:e] * -2.0 if metric == "euclidean" else qf[s:e], gf, rows)
        step = -(-(e - s) // parts)
        _run_parallel(device, [partial(finish_and_rank, rows[a - s:b - s], a, b)
                               for a, b in ((a, min(a + step, e)) for a in range(s, e, step))])
    return acc.result()
