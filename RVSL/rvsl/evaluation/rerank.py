"""k-reciprocal re-ranking (Zhong et al., "Re-ranking Person Re-identification with k-reciprocal
Encoding", CVPR 2017), in a sparse form that never holds an N x N matrix (N = queries + gallery).

The paper's quantities, on the concatenated set P = queries + gallery with squared Euclidean distance
d(i, j) divided by the row maximum max_k d(i, k) (as in the authors' code):

* N(i, k): the k nearest neighbours of i (i itself included); R(i, k) = {j in N(i, k+1): i in N(j, k+1)}
  (written with k1 + 1 neighbours, as the authors' code does).
* R*(i): R(i, k1) united with R(c, k1/2) for every c in R(i, k1) whose R(c, k1/2) shares more than
  2/3 of its elements with R(i, k1).
* V(i, j) = exp(-d(i, j)) / sum_{j' in R*(i)} exp(-d(i, j')) for j in R*(i), else 0.
* Query expansion (k2 > 1): V(i) <- mean of V(j) over the k2 nearest neighbours j of i.
* Jaccard distance d_J(i, j) = 1 - sum_k min(V(i,k), V(j,k)) / sum_k max(V(i,k), V(j,k)); as every row of
  V sums to 1 this is 1 - m / (2 - m) with m = sum_k min(V(i,k), V(j,k)).
* Final distance = (1 - lambda) d_J + lambda d.

V has O(N k1) non-zeros, so it is kept as coordinate lists; nearest neighbours come from chunked
matmuls (the N x N distances are computed once, chunk by chunk, and only their top-k and row maxima
kept); min-sums run over the inverted (column) index, one chunk of queries at a time. Every chunked step
sizes its temporaries to at most ``CHUNK_ELEMENTS`` elements.
"""

import logging
from typing import Iterator, Tuple, Union

import numpy as np
import torch

from .distance import distance_chunk, prepare_features

logger = logging.getLogger(__name__)

# The memory budget of every chunked step: elements per temporary (64 MB of float32, 128 MB of int64).
CHUNK_ELEMENTS = 2 ** 24

# A sparse N x N matrix as (rows, cols, values), sorted row-major (V of the module docstring).
SparseRows = Tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def _steps(total: int, per_item: int) -> Iterator[Tuple[int, int]]:
    """(start, end) chunks of ``total`` items of ``per_item`` elements each, at most ``CHUNK_ELEMENTS`` per chunk."""
    step = max(1, CHUNK_ELEMENTS // max(1, per_item))
    return ((s, min(s + step, total)) for s in range(0, total, step))


def _expand_segments(starts: torch.Tensor, counts: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """For segments [start, start + count): (segment id, position) of every element, concatenated."""
    seg = torch.repeat_interleave(torch.arange(counts.numel(), device=counts.device), counts)
    first = torch.cumsum(counts, 0) - counts
    pos = torch.arange(seg.numel(), device=counts.device) - first[seg] + starts[seg]
    return seg, pos


def _csr_ptr(sorted_index: torch.Tensor, size: int) -> torch.Tensor:
    """Row pointer (size + 1) of a sorted row-index vector."""
    counts = torch.bincount(sorted_index, minlength=size)
    return torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)])


def _neighbours(feats: torch.Tensor, sq: torch.Tensor, num_q: int, num_nb: int,
                chunk_size: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pass over all N x N squared Euclidean distances, ``chunk_size`` rows at a time: (the queries' normalised
    distances to the gallery d(i, j) / max_k d(i, k), Q x G; the row maxima, N; the ``num_nb`` nearest
    neighbours of every row, N x num_nb, nearest first)."""
    n = feats.shape[0]
    out = torch.empty((num_q, n - num_q), dtype=torch.float32, device=feats.device)
    row_max = torch.empty(n, dtype=torch.float32, device=feats.device)
    ranks = torch.empty((n, num_nb), dtype=torch.int64, device=feats.device)
    buf = torch.empty((min(chunk_size, n), n), dtype=torch.float32, device=feats.device)
    for s in range(0, n, chunk_size):
        e = min(s + chunk_size, n)
        d = distance_chunk(feats[s:e], feats, sq[s:e], sq, "euclidean", out=buf[: e - s])
        row_max[s:e] = d.max(dim=1).values.clamp_(min=torch.finfo(torch.float32).tiny)
        ranks[s:e] = torch.topk(d, num_nb, dim=1, largest=False, sorted=True).indices
        if s < num_q:
            qe = min(e, num_q)
            out[s:qe] = d[: qe - s, num_q:] / row_max[s:qe, None]
    return out, row_max, ranks


def _reciprocal_mask(nb: torch.Tensor) -> torch.Tensor:
    """mask[i, a] = i is among the neighbours nb[nb[i, a]] (the k-reciprocal test), for N x K lists ``nb``."""
    mask = torch.empty(nb.shape, dtype=torch.bool, device=nb.device)
    for s, e in _steps(nb.shape[0], nb.shape[1] ** 2):
        ids = torch.arange(s, e, device=nb.device)
        mask[s:e] = (nb[nb[s:e]] == ids[:, None, None]).any(-1)
    return mask


def _expanded_sets(nb_full: torch.Tensor, nb_half: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """R*(i) as (rows, cols) pairs, row-major: R(i, k1) plus every R(c, k1/2), c in R(i, k1), with
    |R(c, k1/2) & R(i, k1)| > 2/3 |R(c, k1/2)|. ``nb_full``/``nb_half`` hold k1 + 1 and k1/2 + 1 neighbours."""
    n, k_full, k_half = nb_full.shape[0], nb_full.shape[1], nb_half.shape[1]
    rec_full, rec_half = _reciprocal_mask(nb_full), _reciprocal_mask(nb_half)
    half_size = rec_half.sum(1)
    pair_rows, pair_cols = [], []
    for s, e in _steps(n, k_full * k_half * k_full):
        nbr, rec = nb_full[s:e], rec_full[s:e]  # B x K
        cand_half, cand_rec = nb_half[nbr], rec_half[nbr]  # B x K x H
        in_r = ((cand_half[..., None] == nbr[:, None, None, :]) & rec[:, None, None, :]).any(-1)
        accept = rec & ((in_r & cand_rec).sum(-1) * 3 > 2 * half_size[nbr])  # B x K
        ids = torch.arange(s, e, device=nb_full.device)
        pair_rows.append(ids[:, None].expand_as(nbr)[rec])
        pair_cols.append(nbr[rec])
        extra = cand_rec & accept[..., None]
        pair_rows.append(ids[:, None, None].expand_as(cand_half)[extra])
        pair_cols.append(cand_half[extra])
    keys = torch.unique(torch.cat(pair_rows) * n + torch.cat(pair_cols))  # sorted: row-major
    return torch.div(keys, n, rounding_mode="floor"), keys % n


def _kernel_weights(feats: torch.Tensor, sq: torch.Tensor, row_max: torch.Tensor, rows: torch.Tensor,
                    cols: torch.Tensor) -> torch.Tensor:
    """V on the pairs of R*: exp(-d(i, j) / max_k d(i, k)), each row normalised to sum 1."""
    weight = torch.empty(rows.numel(), dtype=torch.float32, device=feats.device)
    for s, e in _steps(rows.numel(), feats.shape[1]):
        r, c = rows[s:e], cols[s:e]
        d = (sq[r] + sq[c] - 2.0 * (feats[r] * feats[c]).sum(1)).clamp_(min=0.0)
        weight[s:e] = torch.exp(-d / row_max[r])
    row_sum = torch.zeros(row_max.numel(), dtype=torch.float32, device=feats.device).index_add_(0, rows, weight)
    return weight / row_sum[rows]


def _query_expansion(v: SparseRows, nb_qe: torch.Tensor) -> SparseRows:
    """V(i) <- mean of V(j) over the k2 nearest neighbours j of i (``nb_qe``: N x k2), as (rows, cols, vals)."""
    rows, cols, vals = v
    n, k2 = nb_qe.shape
    ptr = _csr_ptr(rows, n)
    parts = []
    for s, e in _steps(n, k2 * int((ptr[1:] - ptr[:-1]).max())):
        src = nb_qe[s:e].reshape(-1)
        seg, pos = _expand_segments(ptr[src], ptr[src + 1] - ptr[src])
        key = (torch.div(seg, k2, rounding_mode="floor") + s) * n + cols[pos]
        uniq, inverse = torch.unique(key, return_inverse=True)
        sums = torch.zeros(uniq.numel(), dtype=torch.float32, device=vals.device).index_add_(0, inverse, vals[pos])
        parts.append((uniq, sums / k2))
    keys = torch.cat([p[0] for p in parts])
    return torch.div(keys, n, rounding_mode="floor"), keys % n, torch.cat([p[1] for p in parts])


def _mix_jaccard(out: torch.Tensor, v: SparseRows, lam: float) -> None:
    """out <- lam * out + (1 - lam) d_J for the Q x G query rows, d_J = 1 - m / (2 - m) with m = sum_k
    min(V(i, k), V(j, k)) summed through the inverted (column) index of V's gallery rows."""
    rows, cols, vals = v
    num_q, num_g = out.shape
    n = num_q + num_g
    q_ptr = _csr_ptr(rows, n)
    in_gallery = rows >= num_q
    col_order = torch.argsort(cols[in_gallery], stable=True)
    inv_rows = rows[in_gallery][col_order] - num_q
    inv_vals = vals[in_gallery][col_order]
    inv_ptr = _csr_ptr(cols[in_gallery][col_order], n)
    for s, e in _steps(num_q, num_g):
        lo, hi = int(q_ptr[s]), int(q_ptr[e])
        r, c, x = rows[lo:hi], cols[lo:hi], vals[lo:hi]
        seg, pos = _expand_segments(inv_ptr[c], inv_ptr[c + 1] - inv_ptr[c])
        overlap = torch.zeros((e - s) * num_g, dtype=torch.float32, device=out.device)
        overlap.index_add_(0, (r[seg] - s) * num_g + inv_rows[pos], torch.minimum(x[seg], inv_vals[pos]))
        overlap = overlap.view(e - s, num_g)
        out[s:e].mul_(lam).add_(1.0 - overlap / (2.0 - overlap), alpha=1.0 - lam)


def re_ranking(
    qf: Union[np.ndarray, torch.Tensor],
    gf: Union[np.ndarray, torch.Tensor],
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    metric: str = "euclidean",
    chunk_size: int = 1024,
) -> torch.Tensor:
    """Q x G re-ranked float32 distances on the features' device (see the module docstring).

    ``metric`` "euclidean" re-ranks squared Euclidean distances; "cosine" L2-normalises the features first
    (squared Euclidean then ranks like cosine). Memory: the output, features, O(N (k1 + k2)) neighbour
    lists, chunk_size x N distance chunks and ``CHUNK_ELEMENTS``-sized temporaries.
    """
    if k1 < 1 or k2 < 1:
        raise ValueError(f"re-ranking needs k1 >= 1 and k2 >= 1, got k1={k1}, k2={k2}")
    if not 0.0 <= lambda_value <= 1.0:
        raise ValueError(f"re-ranking lambda_value must be in [0, 1], got {lambda_value}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    q, g, _, _ = prepare_features(qf, gf, metric)
    feats = torch.cat([q, g])  # for cosine already L2-normalised; distances below are squared Euclidean
    num_q, n = q.shape[0], feats.shape[0]
    sq = (feats * feats).sum(1)
    out, row_max, ranks = _neighbours(feats, sq, num_q, min(max(k1 + 1, k2), n), chunk_size)
    k_half = min(int(round(k1 / 2.0)) + 1, n)  # round half to even, like numpy.around in the authors' code
    rows, cols = _expanded_sets(ranks[:, :min(k1 + 1, n)].contiguous(), ranks[:, :k_half].contiguous())
    v = (rows, cols, _kernel_weights(feats, sq, row_max, rows, cols))
    if k2 > 1:
        v = _query_expansion(v, ranks[:, :k2])
    _mix_jaccard(out, v, float(lambda_value))
    logger.debug("re-ranking: %d x %d, %d non-zeros in V", num_q, n - num_q, v[2].numel())
    return out
