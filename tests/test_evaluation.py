"""Evaluation library: ranking metrics, distances, re-ranking, image quality, evaluator, pictures."""

from typing import NamedTuple, Tuple

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rvsl.evaluation import (
    PSNR_MAX_DB,
    DatasetEvaluator,
    ImageQualityEvaluator,
    NonFiniteFeatures,
    PictureEvaluator,
    ReIDEvaluator,
    RerankParams,
    compute_distance,
    evaluate_features,
    evaluate_rank,
    inference_on_dataset,
    psnr,
    re_ranking,
    save_rank_list,
    save_triplets,
    ssim,
)
from rvsl.evaluation import rerank as rerank_module  # its memory budget is patched in a test
from rvsl.modeling import RVSL



# ----------------------------------------------------------------------------- plain references

def plain_rank(dist: np.ndarray, q_pids: np.ndarray, g_pids: np.ndarray, q_camids: np.ndarray,
               g_camids: np.ndarray, max_rank: int = 50) -> Tuple[np.ndarray, float, float]:
    """By definition: stable argsort per query, drop same-id-same-camera, then CMC / AP / INP."""
    cmcs, aps, inps = [], [], []
    for i in range(dist.shape[0]):
        order = np.argsort(dist[i], kind="stable")
        junk = (g_pids[order] == q_pids[i]) & (g_camids[order] == q_camids[i])
        hits = (g_pids[order] == q_pids[i])[~junk]
        if not hits.any():
            continue
        ranks = np.flatnonzero(hits) + 1
        cmcs.append((np.arange(1, max_rank + 1) >= ranks[0]).astype(float))
        aps.append(np.mean([(i + 1) / r for i, r in enumerate(ranks)]))
        inps.append(len(ranks) / ranks[-1])
    return np.mean(cmcs, axis=0), float(np.mean(aps)), float(np.mean(inps))


def dense_re_ranking(qf: np.ndarray, gf: np.ndarray, k1: int, k2: int, lam: float) -> np.ndarray:
    """Zhong et al. (CVPR 2017) in the direct dense form of the paper's equations."""
    x = np.concatenate([qf, gf]).astype(np.float64)
    nq, n = qf.shape[0], x.shape[0]
    sq = (x ** 2).sum(1)
    d = np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0.0)
    d = d / d.max(axis=1, keepdims=True)
    rank = np.argsort(d, axis=1, kind="stable")

    def reciprocal(i: int, k: int) -> np.ndarray:
        return np.array([j for j in rank[i, :k + 1] if i in rank[j, :k + 1]])

    v = np.zeros((n, n))
    for i in range(n):
        r = reciprocal(i, k1)
        expanded = list(r)
        for c in r:
            rc = reciprocal(c, int(np.around(k1 / 2.0)))
            if len(np.intersect1d(rc, r)) > 2.0 / 3.0 * len(rc):
                expanded.extend(rc)
        expanded = np.unique(expanded)
        w = np.exp(-d[i, expanded])
        v[i, expanded] = w / w.sum()
    if k2 > 1:
        v = np.stack([v[rank[i, :k2]].mean(axis=0) for i in range(n)])
    jaccard = np.zeros((nq, n))
    for i in range(nq):
        both_min = np.minimum(v[i][None, :], v).sum(1)
        both_max = np.maximum(v[i][None, :], v).sum(1)
        jaccard[i] = 1.0 - both_min / both_max
    return ((1 - lam) * jaccard + lam * d[:nq])[:, nq:]


def random_problem(seed: int, num_q: int = 25, num_g: int = 90, num_ids: int = 9, num_cams: int = 3,
                   levels: int = 6):
    """Integer-valued distances (many ties), random identities and cameras."""
    rng = np.random.default_rng(seed)
    dist = rng.integers(0, levels, (num_q, num_g)).astype(np.float64)
    return (dist, rng.integers(0, num_ids, num_q), rng.integers(0, num_ids, num_g),
            rng.integers(0, num_cams, num_q), rng.integers(0, num_cams, num_g))


# ----------------------------------------------------------------------------- ranking metrics

@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_evaluate_rank_matches_plain_reference(seed, dtype):
    dist, qp, gp, qc, gc = random_problem(seed, levels=[3, 6, 50][seed % 3])
    dist = dist.astype(dtype) * (-1 if seed == 5 else 1)  # negative values too
    want = plain_rank(dist, qp, gp, qc, gc, max_rank=20)
    for chunk in (1, 7, 256):
        cmc, mean_ap, minp = evaluate_rank(dist, qp, gp, qc, gc, max_rank=20, chunk_size=chunk)
        assert cmc.shape == (20,) and cmc.dtype == np.float64
        np.testing.assert_allclose(cmc, want[0], atol=1e-6)
        assert mean_ap == pytest.approx(want[1], abs=1e-6)
        assert minp == pytest.approx(want[2], abs=1e-6)
        assert isinstance(mean_ap, float) and isinstance(minp, float)


def test_ties_break_by_gallery_index():
    # one query (pid 1, cam 0); all distances equal: order is the gallery order
    g_pids = np.array([2, 1, 1, 2, 1])
    g_cams = np.array([1, 0, 1, 1, 2])  # index 1 is junk (same pid, same camera)
    cmc, mean_ap, minp = evaluate_rank(np.zeros((1, 5)), [1], g_pids, [0], g_cams, max_rank=4)
    # after junk removal: [2, 1, 2, 1] -> matches at ranks 2 and 4
    np.testing.assert_allclose(cmc, [0, 1, 1, 1])
    assert mean_ap == pytest.approx((1 / 2 + 2 / 4) / 2)
    assert minp == pytest.approx(2 / 4)


def test_numpy_and_torch_inputs_agree():
    dist, qp, gp, qc, gc = random_problem(3)
    a = evaluate_rank(dist, qp, gp, qc, gc)
    b = evaluate_rank(torch.from_numpy(dist).float(), *(torch.from_numpy(x) for x in (qp, gp, qc, gc)))
    np.testing.assert_allclose(a[0], b[0], atol=1e-12)
    assert a[1:] == pytest.approx(b[1:], abs=1e-12)


def test_no_true_match_raises():
    # every same-identity gallery entry shares the query's camera
    with pytest.raises(ValueError, match="no query has a true match"):
        evaluate_rank(np.random.rand(2, 3), [1, 2], [1, 2, 3], [0, 0], [0, 0, 5])


def test_queries_without_match_are_skipped():
    dist, qp, gp, qc, gc = random_problem(4)
    qp = np.concatenate([qp, [999]])  # an identity absent from the gallery
    qc = np.concatenate([qc, [0]])
    dist = np.concatenate([dist, np.zeros((1, dist.shape[1]))])
    want = plain_rank(dist[:-1], qp[:-1], gp, qc[:-1], gc)
    got = evaluate_rank(dist, qp, gp, qc, gc)
    assert got[1] == pytest.approx(want[1], abs=1e-9)


def test_max_rank_larger_than_gallery_pads_with_last_value():
    dist, qp, gp, qc, gc = random_problem(1, num_g=12, num_ids=4)
    cmc, _, _ = evaluate_rank(dist, qp, gp, qc, gc, max_rank=30)
    assert cmc.shape == (30,)
    np.testing.assert_allclose(cmc, plain_rank(dist, qp, gp, qc, gc, max_rank=30)[0], atol=1e-9)
    np.testing.assert_allclose(cmc[12:], 1.0)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="q_pids"):
        evaluate_rank(np.zeros((2, 3)), [1], [1, 2, 3], [0, 0], [0, 0, 0])
    with pytest.raises(ValueError, match="2-D"):
        evaluate_rank(np.zeros(3), [1], [1, 2, 3], [0], [0, 0, 0])
    with pytest.raises(ValueError, match="NaN"):
        evaluate_rank(np.full((1, 2), np.nan), [1], [1, 2], [0], [1, 1])


def make_features(seed: int = 0, num_q: int = 30, num_g: int = 120, num_ids: int = 10, dim: int = 16):
    """Identity centres plus noise, with random cameras."""
    gen = torch.Generator().manual_seed(seed)
    q_pids = torch.randint(0, num_ids, (num_q,), generator=gen)
    g_pids = torch.randint(0, num_ids, (num_g,), generator=gen)
    centres = torch.randn(num_ids, dim, generator=gen)
    qf = centres[q_pids] + 0.8 * torch.randn(num_q, dim, generator=gen)
    gf = centres[g_pids] + 0.8 * torch.randn(num_g, dim, generator=gen)
    q_cams, g_cams = torch.randint(0, 4, (num_q,), generator=gen), torch.randint(0, 4, (num_g,), generator=gen)
    return qf, gf, q_pids, g_pids, q_cams, g_cams


def test_evaluate_features_equals_distance_then_rank():
    qf, gf, *ids = make_features()
    for metric in ("euclidean", "cosine"):
        a = evaluate_rank(compute_distance(qf, gf, metric), *ids)
        b = evaluate_features(qf, gf, *ids, metric=metric, chunk_size=7)
        np.testing.assert_allclose(a[0], b[0])
        assert a[1:] == pytest.approx(b[1:], abs=1e-12)


# ----------------------------------------------------------------------------- distances

def test_compute_distance_values():
    qf, gf, *_ = make_features(num_q=13, num_g=40)
    direct = ((qf.double()[:, None] - gf.double()[None]) ** 2).sum(-1)
    got = compute_distance(qf, gf, "euclidean", chunk_size=5)
    assert got.dtype == torch.float32 and got.shape == (13, 40)
    torch.testing.assert_close(got.double(), direct, rtol=1e-5, atol=1e-4)
    cos = F.normalize(qf.double(), dim=1) @ F.normalize(gf.double(), dim=1).T
    torch.testing.assert_close(compute_distance(qf.numpy(), gf.numpy(), "cosine").double(), 1 - cos,
                               rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="metric"):
        compute_distance(qf, gf, "manhattan")
    with pytest.raises(ValueError, match="widths"):
        compute_distance(qf, gf[:, :3])


def test_cosine_and_euclidean_rank_alike_on_normalised_features():
    qf, gf, *ids = make_features(seed=2)
    qf, gf = F.normalize(qf, dim=1), F.normalize(gf, dim=1)
    d_euc, d_cos = compute_distance(qf, gf, "euclidean"), compute_distance(qf, gf, "cosine")
    torch.testing.assert_close(d_euc, 2 * d_cos, rtol=0, atol=1e-5)  # |q - g|^2 = 2 (1 - cos)
    assert torch.equal(torch.argsort(d_euc, dim=1, stable=True)[:, :10],
                       torch.argsort(d_cos, dim=1, stable=True)[:, :10])
    a, b = evaluate_rank(d_euc, *ids), evaluate_rank(d_cos, *ids)
    np.testing.assert_allclose(a[0], b[0])
    assert a[1:] == pytest.approx(b[1:], abs=1e-9)


# ----------------------------------------------------------------------------- re-ranking

@pytest.mark.parametrize("k1,k2,lam", [(20, 6, 0.3), (5, 1, 0.5), (7, 3, 0.0)])
def test_re_ranking_matches_dense_reference(k1, k2, lam):
    qf, gf, *_ = make_features(seed=k1, num_q=20, num_g=60, num_ids=8)
    want = dense_re_ranking(qf.numpy(), gf.numpy(), k1, k2, lam)
    for chunk in (7, 1024):
        got = re_ranking(qf, gf, k1, k2, lam, chunk_size=chunk)
        assert got.shape == (20, 60) and got.dtype == torch.float32
        np.testing.assert_allclose(got.numpy(), want, atol=1e-5)


@pytest.mark.parametrize("budget", [1, 300])
def test_re_ranking_chunked_steps_match_dense_reference(monkeypatch, budget):
    # a tiny memory budget splits every chunked phase into many chunks (1: one row or pair at a time)
    monkeypatch.setattr(rerank_module, "CHUNK_ELEMENTS", budget)
    qf, gf, *_ = make_features(seed=11, num_q=9, num_g=31, num_ids=5)
    want = dense_re_ranking(qf.numpy(), gf.numpy(), 6, 3, 0.3)
    np.testing.assert_allclose(re_ranking(qf, gf, 6, 3, 0.3, chunk_size=4).numpy(), want, atol=1e-5)


def test_re_ranking_cosine_normalises_and_checks_arguments():
    qf, gf, *_ = make_features(seed=3, num_q=10, num_g=30)
    got = re_ranking(qf * 5.0, gf, metric="cosine")
    want = dense_re_ranking(F.normalize(qf, dim=1).numpy(), F.normalize(gf, dim=1).numpy(), 20, 6, 0.3)
    np.testing.assert_allclose(got.numpy(), want, atol=1e-5)
    with pytest.raises(ValueError, match="k1"):
        re_ranking(qf, gf, k1=0)
    with pytest.raises(ValueError, match="lambda"):
        re_ranking(qf, gf, lambda_value=1.5)


# ----------------------------------------------------------------------------- image quality

def test_psnr_and_ssim_known_values():
    torch.manual_seed(0)
    x = torch.rand(3, 3, 24, 24) * 0.8
    assert torch.allclose(ssim(x, x), torch.ones(3), atol=1e-6)
    assert torch.allclose(psnr(x, x), torch.full((3,), PSNR_MAX_DB))  # identical images: the cap
    assert torch.allclose(psnr(x + 0.1, x), torch.full((3,), 20.0), atol=1e-4)  # MSE 0.01 -> 20 dB
    # constant images: SSIM reduces to the luminance term (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1)
    a, b = torch.full((1, 3, 16, 16), 0.5), torch.full((1, 3, 16, 16), 0.6)
    c1 = 0.01 ** 2
    assert ssim(a, b).item() == pytest.approx((2 * 0.3 + c1) / (0.25 + 0.36 + c1), abs=1e-5)
    assert ssim(x, torch.rand(3, 3, 24, 24)).max() < 0.5
    with pytest.raises(ValueError, match="same shape"):
        psnr(x, x[:, :, :20])
    with pytest.raises(ValueError, match="at least 11"):
        ssim(x[:, :, :8, :8], x[:, :, :8, :8])


def plain_ssim(x: np.ndarray, y: np.ndarray) -> float:
    """Wang et al. 2004 for one C x H x W image pair: Gaussian-weighted statistics of every valid 11 x 11 window."""
    t = np.arange(11) - 5.0
    g = np.exp(-t ** 2 / (2 * 1.5 ** 2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    values = []
    for c in range(x.shape[0]):
        for i in range(x.shape[1] - 10):
            for j in range(x.shape[2] - 10):
                a, b = x[c, i:i + 11, j:j + 11], y[c, i:i + 11, j:j + 11]
                ma, mb = (w * a).sum(), (w * b).sum()
                va, vb = (w * (a - ma) ** 2).sum(), (w * (b - mb) ** 2).sum()
                cov = (w * (a - ma) * (b - mb)).sum()
                values.append((2 * ma * mb + c1) * (2 * cov + c2) / ((ma ** 2 + mb ** 2 + c1) * (va + vb + c2)))
    return float(np.mean(values))


def test_ssim_matches_plain_definition():
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, 16, 18, generator=gen)
    y = (0.6 * x + 0.4 * torch.rand(2, 3, 16, 18, generator=gen)).clamp(0, 1)
    got = ssim(x, y)
    want = [plain_ssim(x[b].double().numpy(), y[b].double().numpy()) for b in range(2)]
    np.testing.assert_allclose(got.numpy(), want, atol=1e-5)


# ----------------------------------------------------------------------------- evaluators

def feature_batches(clear: torch.Tensor, hazy: torch.Tensor, pids: torch.Tensor, cams: torch.Tensor, size: int = 32):
    """(batch, outputs) pairs as the driver hands them to evaluators."""
    return [({"pid": pids[s:s + size], "camid": cams[s:s + size]},
             {"clear": clear[s:s + size], "hazy": hazy[s:s + size]}) for s in range(0, clear.shape[0], size)]


def test_reid_evaluator_reset_process_evaluate_and_fused():
    qf, gf, q_pids, g_pids, q_cams, g_cams = make_features(seed=4)
    clear = torch.cat([qf, gf])
    hazy = clear + 0.5 * torch.randn(clear.shape, generator=torch.Generator().manual_seed(1))
    pids, cams = torch.cat([q_pids, g_pids]), torch.cat([q_cams, g_cams])
    nq = qf.shape[0]
    ev = ReIDEvaluator(num_query=nq)
    for batch, outputs in feature_batches(clear, hazy, pids, cams):
        ev.process(batch, outputs)
    out = ev.evaluate()
    assert set(out) == {"clear", "hazy", "fused"}
    for metrics in out.values():
        assert set(metrics) == {"mAP", "rank1", "rank5", "rank10", "mINP"}
        assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in metrics.values())
    fused = (F.normalize(clear, dim=1) + F.normalize(hazy, dim=1)) / 2
    dist = ((fused[:nq, None].double() - fused[None, nq:].double()) ** 2).sum(-1).numpy()  # squared Euclidean
    cmc, mean_ap, minp = plain_rank(dist, *(x.numpy() for x in (q_pids, g_pids, q_cams, g_cams)))
    assert out["fused"]["mAP"] == pytest.approx(mean_ap, abs=1e-6)
    assert out["fused"]["rank5"] == pytest.approx(cmc[4], abs=1e-6)
    hazy_dist = ((hazy[:nq, None].double() - hazy[None, nq:].double()) ** 2).sum(-1).numpy()
    assert out["hazy"]["mINP"] == pytest.approx(plain_rank(hazy_dist, q_pids.numpy(), g_pids.numpy(),
                                                           q_cams.numpy(), g_cams.numpy())[2], abs=1e-6)
    ev.reset()
    assert ev.num_images == 0
    ev.process(*feature_batches(clear[:5], hazy[:5], pids[:5], cams[:5])[0])
    with pytest.raises(ValueError, match="no gallery"):
        ev.evaluate()
    with pytest.raises(ValueError, match="branch"):
        ev.process({"pid": pids[:5], "camid": cams[:5]}, {"depth": clear[:5]})


def test_reid_evaluator_refuses_features_that_break_the_distances():
    """NaN, inf, or finite features whose |f|^2 overflows float32 (a diverged model) are named, not ranked."""
    qf, gf, q_pids, g_pids, q_cams, g_cams = make_features(seed=4)
    pids, cams = torch.cat([q_pids, g_pids]), torch.cat([q_cams, g_cams])
    for bad_value, row in ((float("nan"), 0), (float("inf"), 3), (3e19, 5)):  # (3e19)^2 = 9e38 > float32 max
        clear = torch.cat([qf, gf])
        clear[row, 1] = bad_value
        ev = ReIDEvaluator(num_query=qf.shape[0])
        for batch, outputs in feature_batches(clear, torch.cat([qf, gf]), pids, cams):
            ev.process(batch, outputs)
        with pytest.raises(NonFiniteFeatures, match=f"1 of {clear.shape[0]} images have clear features"):
            ev.evaluate()
    ev = ReIDEvaluator(num_query=qf.shape[0])  # 1e19: |f|^2 = 1e38 still fits, so it is ranked
    clear = torch.cat([qf, gf])
    clear[5, 1] = 1e19
    for batch, outputs in feature_batches(clear, clear, pids, cams):
        ev.process(batch, outputs)
    assert 0.0 <= ev.evaluate()["clear"]["mAP"] <= 1.0


def test_reid_evaluator_rerank_uses_params():
    qf, gf, q_pids, g_pids, q_cams, g_cams = make_features(seed=6, num_q=12, num_g=40)
    feats, pids, cams = torch.cat([qf, gf]), torch.cat([q_pids, g_pids]), torch.cat([q_cams, g_cams])
    ev = ReIDEvaluator(12, distance="cosine", rerank=RerankParams(k1=6, k2=3, lambda_value=0.2))
    ev.process({"pid": pids, "camid": cams}, {"clear": feats})
    out = ev.evaluate()
    assert set(out) == {"clear"}
    want = dense_re_ranking(F.normalize(qf, dim=1).numpy(), F.normalize(gf, dim=1).numpy(), 6, 3, 0.2)
    cmc, mean_ap, minp = plain_rank(want, *(x.numpy() for x in (q_pids, g_pids, q_cams, g_cams)))
    assert out["clear"]["mAP"] == pytest.approx(mean_ap, abs=1e-6)
    assert out["clear"]["mINP"] == pytest.approx(minp, abs=1e-6)


class _Embedding(NamedTuple):
    global_feat: torch.Tensor
    bn_feat: torch.Tensor


class FakeModel(torch.nn.Module):
    """The model contract in miniature: forward / encode / embed / render_clear / render_hazy on images in [0, 1]
    (translate and cycle are RVSL's own, on top of these).

    E_C reads the image as is, E_H scales it by 0.9; features are 2 x a linear map of 4 x 4 block means.
    """

    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(3 * 4 * 4, 8)
        torch.nn.init.normal_(self.proj.weight, generator=torch.Generator().manual_seed(0))

    def encode(self, images: torch.Tensor, domain: str) -> Tuple[torch.Tensor, torch.Tensor]:
        scale = 1.0 if domain == "clear" else 0.9
        f1 = F.avg_pool2d(images * scale, 2)
        return f1, F.adaptive_avg_pool2d(f1, 4)

    def embed(self, r1: torch.Tensor) -> _Embedding:
        feat = self.proj(r1.flatten(1))
        return _Embedding(feat, feat * 2.0)

    def forward(self, images: torch.Tensor, branch: str = "hazy") -> torch.Tensor:
        return self.embed(self.encode(images, branch)[1]).bn_feat

    def render_clear(self, f1: torch.Tensor, r1: torch.Tensor, out_size=None) -> torch.Tensor:
        return F.interpolate(f1, scale_factor=2.0).clamp(0, 1)

    def render_hazy(self, f1: torch.Tensor, r1: torch.Tensor, out_size=None) -> torch.Tensor:
        return (0.8 * F.interpolate(f1, scale_factor=2.0) + 0.2).clamp(0, 1)

    translate = RVSL.translate
    cycle = RVSL.cycle


def hand_feature(model: FakeModel, images: torch.Tensor, scale: float) -> np.ndarray:
    """FakeModel's feature of 32 x 32 images, by hand: 2 (W m + b) with m the 8 x 8 block means of scale * images."""
    x = scale * images.double().numpy()
    means = x.reshape(x.shape[0], 3, 4, 8, 4, 8).mean(axis=(3, 5)).reshape(x.shape[0], -1)
    w, b = model.proj.weight.detach().double().numpy(), model.proj.bias.detach().double().numpy()
    return 2.0 * (means @ w.T + b)


def hand_psnr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-image 10 log10(1 / MSE) in numpy."""
    return 10.0 * np.log10(1.0 / ((a - b) ** 2).reshape(a.shape[0], -1).mean(1))


def fake_loader(tmp_path, with_twin: bool, num_q: int = 6, num_g: int = 18, size: int = 32):
    """Batches of identity-coloured images written to disk (so rank lists can read them)."""
    gen = torch.Generator().manual_seed(0)
    pids = torch.cat([torch.arange(num_q) % 4, torch.arange(num_g) % 4])
    cams = torch.cat([torch.zeros(num_q, dtype=torch.long), torch.arange(num_g) % 3 + 1])
    colours = torch.rand(4, 3, 1, 1, generator=gen)
    clear = (colours[pids] + 0.2 * torch.rand(len(pids), 3, size, size, generator=gen)).clamp(0, 1)
    hazy = 0.7 * clear + 0.3 * torch.rand(len(pids), 3, 1, 1, generator=gen)
    paths = []
    tmp_path.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(clear):
        path = tmp_path / f"{int(pids[i]):05d}_c{int(cams[i]):03d}_{i:06d}_0.jpg"
        cv2.imwrite(str(path), (img.permute(1, 2, 0).numpy()[..., ::-1] * 255).astype(np.uint8))
        paths.append(str(path))
    batches = []
    for s in range(0, len(pids), 5):
        batch = {"img": hazy[s:s + 5], "pid": pids[s:s + 5], "camid": cams[s:s + 5], "path": paths[s:s + 5]}
        if with_twin:
            batch["twin"] = clear[s:s + 5]
        batches.append(batch)
    return batches, num_q


class Recorder(DatasetEvaluator):
    """Keeps every (batch, outputs) it is given; returns one fixed key."""

    def __init__(self, key: str = "recorded") -> None:
        self.key = key
        self.reset()

    def reset(self) -> None:
        self.seen = []

    def process(self, batch, outputs) -> None:
        self.seen.append((batch, dict(outputs)))

    def evaluate(self):
        return {self.key: len(self.seen)}


@pytest.mark.parametrize("with_twin", [True, False])
def test_clear_branch_reads_the_twin_on_the_synthetic_set(tmp_path, with_twin):
    model = FakeModel()
    loader, _ = fake_loader(tmp_path, with_twin=with_twin)
    rec = Recorder()
    assert inference_on_dataset(model, loader, [rec], "cpu") == {"recorded": len(loader)}
    for (batch, outputs), given in zip(rec.seen, loader):
        assert batch is given and set(outputs) == {"clear", "hazy"}  # no generator images asked for
        clear_input = batch["twin"] if with_twin else batch["img"]
        np.testing.assert_allclose(outputs["clear"].numpy(), hand_feature(model, clear_input, 1.0), atol=1e-5)
        np.testing.assert_allclose(outputs["hazy"].numpy(), hand_feature(model, batch["img"], 0.9), atol=1e-5)
        assert outputs["clear"].dtype == torch.float32


def test_image_quality_evaluator_against_numpy_psnr(tmp_path):
    model = FakeModel().train()
    loader, _ = fake_loader(tmp_path, with_twin=True)
    quality = ImageQualityEvaluator()
    out = inference_on_dataset(model, loader, [quality, Recorder()], "cpu", amp_dtype=torch.bfloat16)
    assert model.training  # mode restored
    assert set(out["quality"]) == {"dehaze_psnr", "dehaze_ssim", "rehaze_psnr", "rehaze_ssim"}
    img = torch.cat([b["img"] for b in loader]).double().numpy()
    twin = torch.cat([b["twin"] for b in loader]).double().numpy()

    def pooled_up(x: np.ndarray) -> np.ndarray:  # F.interpolate(avg_pool2d(x, 2), x2), nearest
        pooled = x.reshape(x.shape[0], 3, 16, 2, 16, 2).mean(axis=(3, 5))
        return pooled.repeat(2, axis=2).repeat(2, axis=3)

    dehazed = np.clip(pooled_up(0.9 * img), 0, 1)  # G_C(E_H(img))
    rehazed = np.clip(0.8 * pooled_up(twin) + 0.2, 0, 1)  # G_H(E_C(twin))
    assert out["quality"]["dehaze_psnr"] == pytest.approx(hand_psnr(dehazed, twin).mean(), rel=1e-5)
    assert out["quality"]["rehaze_psnr"] == pytest.approx(hand_psnr(rehazed, img).mean(), rel=1e-5)
    want_ssim = np.mean([plain_ssim(dehazed[i], twin[i]) for i in range(len(img))])
    assert out["quality"]["dehaze_ssim"] == pytest.approx(want_ssim, rel=1e-5)
    assert quality.needs(loader[0]) == {"dehazed", "rehazed"}
    quality.reset()
    no_twin = {"img": torch.rand(2, 3, 16, 16)}
    assert quality.needs(no_twin) == frozenset()  # the driver then runs no generator for it
    quality.process(no_twin, {})  # ignored
    assert quality.evaluate() == {}


def test_picture_evaluator_writes_rank_lists_and_triplets(tmp_path):
    model = FakeModel()
    loader, num_q = fake_loader(tmp_path / "img", with_twin=False)
    reid = ReIDEvaluator(num_q)
    pictures = PictureEvaluator(tmp_path / "vis", num=7, ranked_by=reid)
    assert pictures.needs(loader[0]) == {"dehazed", "cycled"}
    rec = Recorder()
    out = inference_on_dataset(model, loader, [reid, pictures, rec], "cpu")
    assert set(out) == {"clear", "hazy", "fused", "recorded"}
    assert pictures.needs(loader[0]) == frozenset()  # full: later batches are run without generator images
    assert [set(o) >= {"dehazed", "cycled"} for _, o in rec.seen] == [True, True] + [False] * (len(loader) - 2)
    for name in ("rank_clear.png", "rank_hazy.png", "rank_fused.png"):
        picture = cv2.imread(str(tmp_path / "vis" / name))
        assert picture is not None and picture.shape[0] == num_q * 128, name
    assert sorted(p.name for p in (tmp_path / "vis").iterdir()) == [  # written atomically: no temporaries left
        "rank_clear.png", "rank_fused.png", "rank_hazy.png", "triplets.png"]
    triplets = cv2.imread(str(tmp_path / "vis" / "triplets.png"))
    assert triplets.shape == (7 * 32, 3 * 32, 3)
    first = torch.cat([b["img"] for b in loader])[:7]
    want = (first.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).numpy()[..., ::-1]
    np.testing.assert_array_equal(triplets[:, :32], np.concatenate(list(want)))  # first column: the inputs


def test_inference_on_dataset_merges_and_refuses_clashes(tmp_path):
    loader, num_q = fake_loader(tmp_path, with_twin=False)
    rec = Recorder()
    evaluators = [ReIDEvaluator(num_q, rerank=RerankParams(4, 2, 0.3)), ImageQualityEvaluator(), rec]
    out = inference_on_dataset(FakeModel(), loader, evaluators, torch.device("cpu"))
    assert set(out) == {"clear", "hazy", "fused", "recorded"}  # no twin: no quality
    assert all(set(outputs) == {"clear", "hazy"} for _, outputs in rec.seen)  # and no generator run for it
    with pytest.raises(ValueError, match="already given"):
        inference_on_dataset(FakeModel(), loader, [Recorder("a"), Recorder("a")], "cpu")


# ----------------------------------------------------------------------------- pictures

def test_save_rank_list_and_triplets(tmp_path):
    img = tmp_path / "a.jpg"
    cv2.imwrite(str(img), np.zeros((20, 10, 3), np.uint8))
    dist = torch.tensor([[0.3, 0.1, 0.2], [0.0, 1.0, 2.0]])
    out = save_rank_list(dist, [1, 2], [1, 2, 1], [0, 0], [1, 1, 0], [str(img)] * 2,
                         [str(img), str(img), str(tmp_path / "missing.jpg")], tmp_path / "vis" / "rank.png", topk=3)
    picture = cv2.imread(str(out))
    assert picture is not None and picture.shape[0] == 2 * 128
    # query 0 (pid 1, cam 0): gallery 2 is junk, so the row shows 1 (red) then 0 (green)
    assert tuple(picture[64, 128 + 12 + 1]) == (0, 0, 255)
    assert tuple(picture[64, 128 + 12 + 128 + 1]) == (0, 200, 0)
    x = torch.rand(2, 3, 16, 20)
    out = save_triplets(x, x, x, tmp_path / "t.png")
    assert cv2.imread(str(out)).shape == (32, 60, 3)
    with pytest.raises(ValueError, match="one shape"):
        save_triplets(x, x[:1], x, tmp_path / "t.png")


# ----------------------------------------------------------------------------- CUDA

@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    qf, gf, *ids = make_features(seed=5)
    cpu = evaluate_features(qf, gf, *ids)
    gpu = evaluate_features(qf.cuda(), gf.cuda(), *(x.cuda() for x in ids))
    np.testing.assert_allclose(cpu[0], gpu[0])
    assert cpu[1:] == pytest.approx(gpu[1:], abs=1e-6)
    dist, qp, gp, qc, gc = random_problem(6)
    a = evaluate_rank(dist, qp, gp, qc, gc)
    b = evaluate_rank(torch.from_numpy(dist).cuda(), qp, gp, qc, gc)
    assert a[1:] == pytest.approx(b[1:], abs=1e-12)
    torch.testing.assert_close(re_ranking(qf.cuda(), gf.cuda()).cpu(), re_ranking(qf, gf), atol=1e-5, rtol=0)
