"""Ranking metrics (CMC, mAP, mINP) for the market/VeRi protocol, one chunk of queries at a time.

For one query, gallery entries with the same identity AND the same camera are removed (junk); the rank of
every remaining true match is its 1-based position among the remaining entries ordered by (distance, gallery
index), the order of a stable sort. Only entries not farther than the query's hardest true match can come
before a match, so a chunk of queries (rows of a distance matrix) is ranked in four phases:

1. ``_identity_groups``: each query's same-identity gallery entries, which of them are true matches and
   which junk, and the hardest (largest) true-match distance;
2. ``_candidates``: the entries not farther than their row's hardest match, junk dropped, matches marked;
3. ``_match_ranks``: the candidates in (row, distance, column) order (one stable integer sort); a true
   match's rank is its position within its row;
4. ``_row_metrics``: per query with a true match, AP, INP and the first match's rank.

Cost per chunk: one comparison pass over the chunk plus sorting the candidates (about 1,200 per query on the
benchmark's VeRi-Wild-sized problem; the full gallery per query only for useless features). Everything runs
on the distances' device with torch's own threading. Metrics, per query with at least one true match (n matches at ranks
r_1 < ... < r_n): AP = mean_i (i / r_i); INP = n / r_n (Ye et al., "Deep Learning for Person
Re-identification: A Survey and Outlook", TPAMI 2021); CMC_k = [r_1 <= k]. All are averaged over such queries.
"""

import logging
from typing import NamedTuple, Optional, Tuple, Union

import numpy as np
import torch

from .distance import distance_chunk, prepare_features

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


class ChunkMetrics(NamedTuple):
    """Sums over the queries of one chunk that have a true match."""

    sum_ap: float
    sum_inp: float
    first_hist: torch.Tensor  # count of first-match ranks 1..max_rank, then "later"
    num_valid: int


class IdentityGroups(NamedTuple):
    """A chunk's same-identity gallery entries, C x W (W = the largest group), and each row's hardest match."""

    cols: torch.Tensor  # gallery index of each entry (padding repeats a valid index)
    true_match: torch.Tensor  # same identity, another camera
    junk: torch.Tensor  # same identity, same camera
    hardest: torch.Tensor  # C: largest true-match distance, -inf for rows without a true match


class RankAccumulator:
    """Sums AP, INP and first-match ranks over chunks of query rows; gallery ids are fixed up front."""

    def __init__(self, g_pids: torch.Tensor, g_camids: torch.Tensor, max_rank: int) -> None:
        if max_rank < 1:
            raise ValueError(f"max_rank must be >= 1, got {max_rank}")
        self.device = g_pids.device
        self.g_pids = g_pids.long()
        self.g_camids = g_camids.long()
        self.max_rank = max_rank
        # gallery grouped by identity: the gallery entries of pid p are by_pid[start(p):end(p)], ascending
        self.by_pid = torch.argsort(self.g_pids, stable=True)
        self.sorted_pids = self.g_pids[self.by_pid]
        self.sum_ap = 0.0
        self.sum_inp = 0.0
        self.first_hist = torch.zeros(max_rank + 1, dtype=torch.int64, device=self.device)
        self.num_valid = 0
        self.num_queries = 0

    def add(self, dist: torch.Tensor, q_pids: torch.Tensor, q_camids: torch.Tensor) -> None:
        """Rank one chunk: ``dist`` is C x G (rows of queries), ``q_pids``/``q_camids`` have C entries."""
        self.num_queries += dist.shape[0]
        if dist.shape[0] == 0 or dist.shape[1] == 0:
            return
        dist = (dist if dist.dtype == torch.float64 else dist.float()).contiguous()
        groups = self._identity_groups(dist, q_pids.long(), q_camids.long())
        if groups is None:
            return
        flat, is_match = _candidates(dist, groups)
        rows = torch.div(flat, dist.shape[1], rounding_mode="floor")
        m_rows, m_rank = _match_ranks(dist.view(-1)[flat], rows, is_match, dist.shape[0])
        part = _row_metrics(m_rows, m_rank, dist.shape[0], self.max_rank)
        self.sum_ap += part.sum_ap
        self.sum_inp += part.sum_inp
        self.first_hist += part.first_hist
        self.num_valid += part.num_valid

    def _identity_groups(self, dist: torch.Tensor, q_pids: torch.Tensor,
                         q_camids: torch.Tensor) -> Optional[IdentityGroups]:
        """Phase 1: each row's same-identity gallery entries, padded to the chunk's largest group; None if no
        row has a true match."""
        start = torch.searchsorted(self.sorted_pids, q_pids, right=False)
        count = torch.searchsorted(self.sorted_pids, q_pids, right=True) - start
        width = int(count.max())
        if width == 0:
            return None
        offsets = torch.arange(width, device=self.device)
        in_group = offsets[None, :] < count[:, None]
        cols = self.by_pid[(start[:, None] + offsets[None, :]).clamp_(max=self.g_pids.numel() - 1)]
        same_cam = self.g_camids[cols] == q_camids[:, None]
        true_match = in_group & ~same_cam
        if not bool(true_match.any()):
            return None
        hardest = dist.gather(1, cols).masked_fill(~true_match, float("-inf")).max(dim=1).values
        if bool(torch.isnan(hardest).any()):
            raise ValueError("distmat has NaN distances for true matches")
        return IdentityGroups(cols, true_match, in_group & same_cam, hardest)

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


def _candidates(dist: torch.Tensor, groups: IdentityGroups) -> Tuple[torch.Tensor, torch.Tensor]:
    """Phase 2: flat indices (row-major) of the entries not farther than their row's hardest match, junk
    dropped, and which of them are true matches. They include every entry that can precede a match.
    """
    mask = dist <= groups.hardest[:, None]
    rows = torch.arange(dist.shape[0], device=dist.device)[:, None].expand_as(groups.cols)
    mask[rows[groups.junk], groups.cols[groups.junk]] = False
    flat = _flat_nonzero(mask)
    # the true matches are candidates; both index lists are sorted, so binary search finds their places
    match_flat = torch.sort(rows[groups.true_match] * dist.shape[1] + groups.cols[groups.true_match]).values
    is_match = torch.zeros(flat.numel(), dtype=torch.bool, device=dist.device)
    is_match[torch.searchsorted(flat, match_flat)] = True
    return flat, is_match


def _flat_nonzero(mask: torch.Tensor) -> torch.Tensor:
    """Flat indices of the True entries of a contiguous mask; on CPU through numpy (3x faster here)."""
    if mask.device.type != "cpu":
        return torch.nonzero(mask.view(-1)).squeeze(1)
    return torch.from_numpy(np.flatnonzero(mask.numpy()))


def _segment_starts(sorted_rows: torch.Tensor, num_rows: int) -> torch.Tensor:
    """Index of each row's first element in a non-decreasing row vector (num_rows entries)."""
    counts = torch.bincount(sorted_rows, minlength=num_rows)
    return torch.cumsum(counts, 0) - counts


def _order_codes(values: torch.Tensor) -> torch.Tensor:
    """Non-negative int64 codes below 2^32 ordered like ``values`` (equal values, equal codes).

    float32: the IEEE bit pattern made monotone (-0.0 and 0.0 alike); float64: the dense rank of each value.
    """
    if values.dtype == torch.float64:
        return torch.unique(values, sorted=True, return_inverse=True)[1]
    bits = (values + 0.0).view(torch.int32).long()  # + 0.0 turns -0.0 into 0.0
    return torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits) + (1 << 31)


def _match_ranks(values: torch.Tensor, rows: torch.Tensor, is_match: torch.Tensor,
                 num_rows: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Phase 3: (row, 1-based rank) of every true match, ranks ascending within a row.

    ``values``/``rows``/``is_match`` describe the candidates in row-major order (columns ascending). One
    stable sort by the key row * 2^32 + distance code puts them in (row, distance, column) order, the
    evaluation order within each row (an integer sort: several times faster than sorting floats on CPU).
    """
    keys, order = torch.sort((rows << 32) | _order_codes(values), stable=True)
    rows, is_match = keys >> 32, is_match[order]
    position = torch.arange(rows.numel(), device=rows.device) - _segment_starts(rows, num_rows)[rows]
    return rows[is_match], (position[is_match] + 1).double()


def _row_metrics(m_rows: torch.Tensor, m_rank: torch.Tensor, num_rows: int, max_rank: int) -> ChunkMetrics:
    """Phase 4: AP, INP and first-match ranks of the rows with matches, from the matches' (row, rank)."""
    n_match = torch.bincount(m_rows, minlength=num_rows)
    m_start = _segment_starts(m_rows, num_rows)
    ordinal = torch.arange(m_rows.numel(), device=m_rows.device) - m_start[m_rows] + 1  # i of r_i
    precision_sum = torch.zeros(num_rows, dtype=torch.float64, device=m_rows.device)
    precision_sum.index_add_(0, m_rows, ordinal.double() / m_rank)
    valid = n_match > 0
    n_valid = n_match[valid]
    first_rank = m_rank[m_start[valid]]
    last_rank = m_rank[m_start[valid] + n_valid - 1]
    hist = torch.bincount(first_rank.long().clamp_(max=max_rank + 1) - 1, minlength=max_rank + 1)
    return ChunkMetrics(float((precision_sum[valid] / n_valid).sum()), float((n_valid / last_rank).sum()), hist,
                        int(n_valid.numel()))


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
    for s in range(0, num_q, chunk_size):
        acc.add(dist[s:s + chunk_size], q_pids_t[s:s + chunk_size], q_cams_t[s:s + chunk_size])
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

    ``metric`` "euclidean" computes squared Euclidean distances (same ranking), "cosine" 1 - cosine.
    Distances are computed and ranked one chunk of queries at a time, on the features' device.
    """
    qf, gf, q_sq, g_sq = prepare_features(qf, gf, metric)
    device = qf.device
    num_q, num_g = qf.shape[0], gf.shape[0]
    q_pids_t, q_cams_t, g_pids_t, g_cams_t = _checked_ids(device, (q_pids, q_camids), (g_pids, g_camids),
                                                          num_q, num_g, chunk_size)
    acc = RankAccumulator(g_pids_t, g_cams_t, max_rank)
    buffer = torch.empty((min(chunk_size, num_q), num_g), dtype=torch.float32, device=device)
    for s in range(0, num_q, chunk_size):
        e = min(s + chunk_size, num_q)
        dist = distance_chunk(qf[s:e], gf, q_sq[s:e] if q_sq is not None else None, g_sq, metric, out=buffer[: e - s])
        acc.add(dist, q_pids_t[s:e], q_cams_t[s:e])
    return acc.result()
