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
kept); min-sums run over the inverted (column) index, one chunk of queries at a time.
"""

import logging
from typing import Tuple, Union

import numpy as np
import torch

from .distance import distance_chunk, prepare_features

logger = logging.getLogger(__name__)


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


def _reciprocal_mask(ranks: torch.Tensor, chunk: int) -> torch.Tensor:
    """mask[i, a] = i is among the neighbours ranks[ranks[i, a]] (the k-reciprocal test)."""
    n = ranks.shape[0]
    mask = torch.empty(ranks.shape, dtype=torch.bool, device=ranks.device)
    for s in range(0, n, chunk):
        e = min(s + chunk, n)
        ids = torch.arange(s, e, device=ranks.device)
        mask[s:e] = (ranks[ranks[s:e]] == ids[:, None, None]).any(-1)
    return mask


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

    ``metric="cosine"`` L2-normalises the features first (squared Euclidean then ranks like cosine).
    Memory: the output, features, O(N (k1 + k2)) neighbour lists and chunk_size x N distance chunks.
    """
    if k1 < 1 or k2 < 1:
        raise ValueError(f"re-ranking needs k1 >= 1 and k2 >= 1, got k1={k1}, k2={k2}")
    if not 0.0 <= lambda_value <= 1.0:
        raise ValueError(f"re-ranking lambda_value must be in [0, 1], got {lambda_value}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    q, g, _, _ = prepare_features(qf, gf, metric)
    feats = torch.cat([q, g])  # for cosine already L2-normalised; distances below are squared Euclidean
    device = feats.device
    num_q, n = q.shape[0], feats.shape[0]
    sq = (feats * feats).sum(1)
    num_nb = min(max(k1 + 1, k2), n)

    # pass 1: row maxima and nearest neighbours; the query rows' gallery part goes straight to the output
    out = torch.empty((num_q, n - num_q), dtype=torch.float32, device=device)
    row_max = torch.empty(n, dtype=torch.float32, device=device)
    ranks = torch.empty((n, num_nb), dtype=torch.int64, device=device)
    buf = torch.empty((min(chunk_size, n), n), dtype=torch.float32, device=device)
    for s in range(0, n, chunk_size):
        e = min(s + chunk_size, n)
        d = distance_chunk(feats[s:e], feats, sq[s:e], sq, "euclidean", out=buf[: e - s])
        row_max[s:e] = d.max(dim=1).values.clamp_(min=torch.finfo(torch.float32).tiny)
        ranks[s:e] = torch.topk(d, num_nb, dim=1, largest=False, sorted=True).indices
        if s < num_q:
            qe = min(e, num_q)
            out[s:qe] = d[: qe - s, num_q:] / row_max[s:qe, None]
    del buf

    # k-reciprocal sets R(i, k1) and R(c, k1/2) as masks over the neighbour lists
    k_full = min(k1 + 1, n)
    k_half = min(int(round(k1 / 2.0)) + 1, n)  # round half to even, like numpy.around in the authors' code
    nb_full, nb_half = ranks[:, :k_full].contiguous(), ranks[:, :k_half].contiguous()
    step = max(1, 2 ** 22 // (k_full * k_full))
    rec_full = _reciprocal_mask(nb_full, step)
    rec_half = _reciprocal_mask(nb_half, max(1, 2 ** 22 // (k_half * k_half)))
    half_size = rec_half.sum(1)

    # R*(i): pairs (i, j), chunked over i; a candidate c = nb_full[i, a] with a reciprocal is accepted
    # when |R(c, k1/2) & R(i, k1)| > 2/3 |R(c, k1/2)|
    pair_rows, pair_cols = [], []
    step = max(1, 2 ** 24 // (k_full * k_half * k_full))
    for s in range(0, n, step):
        e = min(s + step, n)
        nbr, rec = nb_full[s:e], rec_full[s:e]  # B x K
        cand_half, cand_rec = nb_half[nbr], rec_half[nbr]  # B x K x H
        in_r = ((cand_half[..., None] == nbr[:, None, None, :]) & rec[:, None, None, :]).any(-1)
        overlap = (in_r & cand_rec).sum(-1)  # B x K
        accept = rec & (overlap * 3 > 2 * half_size[nbr])
        ids = torch.arange(s, e, device=device)
        pair_rows.append(ids[:, None].expand_as(nbr)[rec])
        pair_cols.append(nbr[rec])
        extra = cand_rec & accept[..., None]
        pair_rows.append(ids[:, None, None].expand_as(cand_half)[extra])
        pair_cols.append(cand_half[extra])
    keys = torch.unique(torch.cat(pair_rows) * n + torch.cat(pair_cols))  # sorted: row-major
    v_rows, v_cols = torch.div(keys, n, rounding_mode="floor"), keys % n
    del pair_rows, pair_cols, keys

    # V: Gaussian kernel of the normalised distance over R*(i), each row summing to 1
    weight = torch.empty(v_rows.numel(), dtype=torch.float32, device=device)
    pair_step = max(1, 2 ** 24 // feats.shape[1])
    for s in range(0, v_rows.numel(), pair_step):
        r, c = v_rows[s:s + pair_step], v_cols[s:s + pair_step]
        d = (sq[r] + sq[c] - 2.0 * (feats[r] * feats[c]).sum(1)).clamp_(min=0.0)
        weight[s:s + pair_step] = torch.exp(-d / row_max[r])
    row_sum = torch.zeros(n, dtype=torch.float32, device=device).index_add_(0, v_rows, weight)
    v_vals = weight / row_sum[v_rows]

    # query expansion: V(i) <- mean of V over the k2 nearest neighbours of i
    if k2 > 1:
        ptr = _csr_ptr(v_rows, n)
        nb_qe = ranks[:, :k2]
        parts = []
        rows_step = max(1, 2 ** 22 // max(1, k2 * int((ptr[1:] - ptr[:-1]).max())))
        for s in range(0, n, rows_step):
            e = min(s + rows_step, n)
            src = nb_qe[s:e].reshape(-1)
            seg, pos = _expand_segments(ptr[src], ptr[src + 1] - ptr[src])
            dst_row = torch.div(seg, k2, rounding_mode="floor") + s
            key = dst_row * n + v_cols[pos]
            uniq, inverse = torch.unique(key, return_inverse=True)
            vals = torch.zeros(uniq.numel(), dtype=torch.float32, device=device)
            vals.index_add_(0, inverse, v_vals[pos])
            parts.append((uniq, vals / k2))
        keys = torch.cat([p[0] for p in parts])
        v_vals = torch.cat([p[1] for p in parts])
        v_rows, v_cols = torch.div(keys, n, rounding_mode="floor"), keys % n
        del parts, keys

    # Jaccard distance of queries to gallery through the inverted index of the gallery rows of V
    q_ptr = _csr_ptr(v_rows, n)
    in_gallery = v_rows >= num_q
    col_order = torch.argsort(v_cols[in_gallery], stable=True)
    inv_rows = v_rows[in_gallery][col_order] - num_q
    inv_vals = v_vals[in_gallery][col_order]
    inv_ptr = _csr_ptr(v_cols[in_gallery][col_order], n)
    num_g = n - num_q
    lam = float(lambda_value)
    q_step = max(1, min(256, 2 ** 26 // max(1, num_g)))
    for s in range(0, num_q, q_step):
        e = min(s + q_step, num_q)
        lo, hi = int(q_ptr[s]), int(q_ptr[e])
        rows, cols, vals = v_rows[lo:hi], v_cols[lo:hi], v_vals[lo:hi]
        seg, pos = _expand_segments(inv_ptr[cols], inv_ptr[cols + 1] - inv_ptr[cols])
        mins = torch.minimum(vals[seg], inv_vals[pos])
        overlap = torch.zeros((e - s) * num_g, dtype=torch.float32, device=device)
        overlap.index_add_(0, (rows[seg] - s) * num_g + inv_rows[pos], mins)
        overlap = overlap.view(e - s, num_g)
        jaccard = 1.0 - overlap / (2.0 - overlap)
        out[s:e].mul_(lam).add_(jaccard, alpha=1.0 - lam)
    logger.debug("re-ranking: %d x %d, %d non-zeros in V", num_q, num_g, v_vals.numel())
    return out
