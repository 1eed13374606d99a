"""Losses and priors against direct (looped) computations of their formulas."""

import math

import numpy as np
import pytest
import torch

from rvsl.losses import (
    consistency_loss,
    cr_loss,
    cross_entropy,
    dcp_loss,
    discriminator_loss,
    estimate_airlight,
    lsgan_loss,
    midc_loss,
    pairwise_distance,
    reid_loss,
    translation_loss,
    triplet_loss,
    tv_loss,
)
from rvsl.modeling import ReIDOutput
from rvsl.modeling.discriminator import PatchDiscriminator
from rvsl.utils.errors import InputError

EPS = 1e-6


def _images(seed: int, shape=(2, 3, 9, 11)) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# ----------------------------------------------------------------------------- numpy references (losses/priors.py)


def np_dark_channel(img: np.ndarray, patch: int) -> np.ndarray:
    """Min over channels and the window rows i-(p-1)//2 .. i+p//2 (cropped at the border), looped."""
    b, _, h, w = img.shape
    out = np.empty((b, h, w))
    lo, hi = (patch - 1) // 2, patch // 2
    for n in range(b):
        for i in range(h):
            for j in range(w):
                best = np.inf
                for y in range(max(0, i - lo), min(h, i + hi + 1)):
                    for x in range(max(0, j - lo), min(w, j + hi + 1)):
                        best = min(best, img[n, 0, y, x], img[n, 1, y, x], img[n, 2, y, x])
                out[n, i, j] = best
    return out


def np_tv(img: np.ndarray) -> float:
    b, c, h, w = img.shape
    hor = [abs(img[n, k, i, j + 1] - img[n, k, i, j])
           for n in range(b) for k in range(c) for i in range(h) for j in range(w - 1)]
    ver = [abs(img[n, k, i + 1, j] - img[n, k, i, j])
           for n in range(b) for k in range(c) for i in range(h - 1) for j in range(w)]
    return sum(hor) / len(hor) + sum(ver) / len(ver)


def np_midc(clear: np.ndarray, hazy: np.ndarray) -> float:
    values = []
    for n in range(clear.shape[0]):
        total, count = 0.0, 0
        for i in range(clear.shape[2]):
            for j in range(clear.shape[3]):
                dc, dh = clear[n, :, i, j].min(), hazy[n, :, i, j].min()
                if dc > dh:
                    total += abs(dh - dc)
                    count += 1
        values.append(total / max(count, 1))
    return float(np.mean(values))


def np_airlight(hazy: np.ndarray) -> np.ndarray:
    b, _, h, w = hazy.shape
    eroded = np_dark_channel(hazy, 3)
    k = max(1, (h * w) // 1000)
    out = np.empty((b, 3))
    for n in range(b):
        threshold = sorted(eroded[n].ravel(), reverse=True)[k - 1]
        picked = [hazy[n, :, i, j] for i in range(h) for j in range(w) if eroded[n, i, j] >= threshold]
        out[n] = np.mean(picked, axis=0)
    return out


def np_cr(clear: np.ndarray, hazy: np.ndarray) -> float:
    airlight = np_airlight(hazy)
    total, count = 0.0, 0
    for n in range(clear.shape[0]):
        a = airlight[n] / max(airlight[n].sum(), EPS)
        for i in range(clear.shape[2]):
            for j in range(clear.shape[3]):
                s = hazy[n, :, i, j] / max(hazy[n, :, i, j].sum(), EPS)
                g = clear[n, :, i, j] / max(clear[n, :, i, j].sum(), EPS)
                u = (s - a) / max(np.linalg.norm(s - a), EPS)
                v = (g - a) / max(np.linalg.norm(g - a), EPS)
                total += float(((u - v) ** 2).sum())
                count += 3
    return total / count


# ----------------------------------------------------------------------------- priors


@pytest.mark.parametrize("patch", [1, 3, 4, 35])
def test_dcp_matches_direct_formula(patch):
    img = _images(0)
    expected = np_dark_channel(img.numpy(), patch).mean()
    assert dcp_loss(img, patch).item() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("patch", [3, 4, 35])
def test_dcp_gradient_reaches_each_windows_minimum(patch):
    """d dcp / d pixel = (windows whose minimum it is) / (B H W): the separable filter routes the gradient right."""
    img = _images(3).requires_grad_(True)
    dcp_loss(img, patch).backward()
    b, c, h, w = img.shape
    lo, hi = (patch - 1) // 2, patch // 2
    values = img.detach().numpy()
    expected = np.zeros_like(values)
    for n in range(b):
        for i in range(h):
            for j in range(w):
                window = values[n, :, max(0, i - lo):i + hi + 1, max(0, j - lo):j + hi + 1]
                k, y, x = np.unravel_index(window.argmin(), window.shape)
                expected[n, k, max(0, i - lo) + y, max(0, j - lo) + x] += 1 / (b * h * w)
    np.testing.assert_allclose(img.grad.numpy(), expected, atol=1e-12)


def test_dcp_default_patch_is_35():
    img = _images(1)
    assert dcp_loss(img).item() == pytest.approx(np_dark_channel(img.numpy(), 35).mean(), abs=1e-6)


def test_tv_matches_direct_formula():
    img = _images(2)
    assert tv_loss(img).item() == pytest.approx(np_tv(img.numpy()), abs=1e-6)


def test_midc_matches_direct_formula():
    clear, hazy = _images(3), _images(4)
    assert midc_loss(clear, hazy).item() == pytest.approx(np_midc(clear.numpy(), hazy.numpy()), abs=1e-6)


def test_midc_is_zero_when_haze_brightens():
    clear = _images(5)
    assert midc_loss(clear, (clear + 0.1).clamp(max=1.0)).item() == 0.0


@pytest.mark.parametrize("shape", [(2, 3, 9, 11), (2, 3, 40, 60)])
def test_airlight_matches_direct_formula(shape):
    hazy = _images(6, shape)
    np.testing.assert_allclose(estimate_airlight(hazy).numpy(), np_airlight(hazy.numpy()), atol=1e-6)


def test_cr_matches_direct_formula():
    clear, hazy = _images(7), _images(8)
    assert cr_loss(clear, hazy).item() == pytest.approx(np_cr(clear.numpy(), hazy.numpy()), abs=1e-6)


def test_cr_is_zero_on_haze_lines():
    hazy = _images(9) * 0.5 + 0.5
    airlight = estimate_airlight(hazy)[:, :, None, None]
    # Removing a fraction of the airlight moves each chromaticity away from a along its haze line.
    clear = (hazy - 0.2 * airlight) / 0.7
    assert cr_loss(clear, hazy).item() < 1e-20
    assert cr_loss(_images(10), hazy).item() > 0.01


PRIORS = {
    "dcp": lambda c, h: dcp_loss(c, 3),
    "tv": lambda c, h: tv_loss(c),
    "midc": midc_loss,
    "cr": cr_loss,
}


@pytest.mark.parametrize("name", sorted(PRIORS))
def test_prior_gradient_is_finite_and_nonzero(name):
    clear = _images(11).requires_grad_(True)
    hazy = _images(12).requires_grad_(True)
    PRIORS[name](clear, hazy).backward()
    assert torch.isfinite(clear.grad).all()
    assert clear.grad.abs().sum() > 0


@pytest.mark.parametrize("name", sorted(PRIORS))
def test_prior_uses_every_image(name):
    clear, hazy = _images(13), _images(14)
    base = PRIORS[name](clear, hazy).item()
    clear2, hazy2 = clear.clone(), hazy.clone()
    clear2[-1] = _images(15)[-1]
    hazy2[-1] = _images(16)[-1]
    assert PRIORS[name](clear2, hazy2).item() != pytest.approx(base, abs=1e-9)


def test_airlight_uses_every_image():
    hazy = _images(17)
    changed = hazy.clone()
    changed[-1] = _images(18)[-1]
    a, b = estimate_airlight(hazy), estimate_airlight(changed)
    assert torch.equal(a[:-1], b[:-1])
    assert not torch.allclose(a[-1], b[-1])


def test_dcp_descent_lowers_the_dark_channel():
    img = _images(19, (2, 3, 16, 16)).float().requires_grad_(True)
    before = dcp_loss(img, 5)
    before.backward()
    with torch.no_grad():
        stepped = img - 1.0 * img.grad / img.grad.abs().max()
    assert dcp_loss(stepped, 5).item() < before.item()


def test_priors_reject_bad_shapes():
    with pytest.raises(InputError, match="img"):
        dcp_loss(torch.rand(2, 1, 8, 8))
    with pytest.raises(InputError, match="clear and hazy"):
        midc_loss(torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 9))
    with pytest.raises(InputError, match="DCP_PATCH"):
        dcp_loss(torch.rand(2, 3, 8, 8), 0)


# ----------------------------------------------------------------------------- identity losses


def test_cross_entropy_with_label_smoothing():
    logits = torch.randn(5, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    targets = torch.tensor([0, 3, 1, 1, 2])
    eps = 0.1
    expected = 0.0
    for row, y in zip(logits.tolist(), targets.tolist()):
        log_z = math.log(sum(math.exp(v) for v in row))
        log_p = [v - log_z for v in row]
        q = [(1 - eps) * (k == y) + eps / len(row) for k in range(len(row))]
        expected -= sum(qk * lp for qk, lp in zip(q, log_p))
    expected /= len(targets)
    assert cross_entropy(logits, targets, eps).item() == pytest.approx(expected, abs=1e-10)
    plain = -sum(torch.log_softmax(logits, 1)[i, y] for i, y in enumerate(targets.tolist())) / 5
    assert cross_entropy(logits, targets).item() == pytest.approx(plain.item(), abs=1e-10)
    with pytest.raises(InputError, match="LABEL_SMOOTH"):
        cross_entropy(logits, targets, 1.0)


def _brute_triplet(features: torch.Tensor, targets: torch.Tensor, margin: float) -> float:
    x, y = features.tolist(), targets.tolist()
    losses = []
    for a in range(len(x)):
        dist = [math.dist(x[a], x[j]) for j in range(len(x))]
        pos = [dist[j] for j in range(len(x)) if y[j] == y[a]]
        neg = [dist[j] for j in range(len(x)) if y[j] != y[a]]
        if neg:
            losses.append(max(0.0, max(pos) - min(neg) + margin))
    return sum(losses) / len(losses)


@pytest.mark.parametrize("margin", [0.3, 5.0])
def test_triplet_matches_brute_force(margin):
    gen = torch.Generator().manual_seed(1)
    features = torch.randn(12, 6, generator=gen, dtype=torch.float64)
    targets = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])
    expected = _brute_triplet(features, targets, margin)
    assert triplet_loss(features, targets, margin).item() == pytest.approx(expected, abs=1e-9)


def test_triplet_gradient_and_degenerate_batch():
    features = torch.randn(8, 4, generator=torch.Generator().manual_seed(2), requires_grad=True)
    targets = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    triplet_loss(features, targets, 5.0).backward()
    assert torch.isfinite(features.grad).all() and features.grad.abs().sum() > 0
    same = torch.zeros(4, dtype=torch.long)
    loss = triplet_loss(features[:4], same)
    assert loss.item() == 0.0 and loss.requires_grad


def test_reid_loss_is_ce_plus_triplet():
    gen = torch.Generator().manual_seed(3)
    output = ReIDOutput(*(torch.randn(6, n, generator=gen) for n in (8, 8, 3)))
    targets = torch.tensor([0, 0, 1, 1, 2, 2])
    expected = cross_entropy(output.logits, targets, 0.1) + triplet_loss(output.global_feat, targets, 0.3)
    assert reid_loss(output, targets, 0.1, 0.3).item() == pytest.approx(expected.item())
    with pytest.raises(InputError, match="targets"):
        reid_loss(output, targets[:5], 0.1, 0.3)


# ----------------------------------------------------------------------------- translation, consistency, GAN


def test_translation_and_consistency_values():
    pred = torch.tensor([[0.0, 0.5, 3.0]])
    target = torch.tensor([[0.0, 0.0, 0.0]])
    # SmoothL1 (beta 1): 0.5 d^2 below 1, |d| - 0.5 above.
    assert translation_loss(pred, target).item() == pytest.approx((0.0 + 0.125 + 2.5) / 3)
    assert consistency_loss(pred, target).item() == pytest.approx(3.5 / 3)
    with pytest.raises(InputError, match="pred and target"):
        translation_loss(pred, target[:, :2])


def test_lsgan_values():
    prediction = torch.tensor([[0.0, 1.0], [2.0, -1.0]])
    assert lsgan_loss(prediction, True).item() == pytest.approx((1 + 0 + 1 + 4) / 4)
    assert lsgan_loss(prediction, False).item() == pytest.approx((0 + 1 + 4 + 1) / 4)


# ----------------------------------------------------------------------------- precision under autocast

BF16 = dict(device_type="cpu", dtype=torch.bfloat16)


def _relative(got: torch.Tensor, expected: torch.Tensor) -> float:
    return float((got.double() - expected.double()).abs().max() / expected.double().abs().max().clamp_min(1e-30))


def test_triplet_distances_are_float32_under_bf16_autocast():
    """72 pooled-like 2048-d features (a common positive offset): bf16 distances would be far off the margin."""
    gen = torch.Generator().manual_seed(4)
    features = torch.randn(72, 2048, generator=gen) * 0.1 + 1.0
    targets = torch.arange(12).repeat_interleave(6)
    expected = triplet_loss(features, targets, 0.3)
    expected_dist = pairwise_distance(features)
    with torch.autocast(**BF16):
        got = triplet_loss(features, targets, 0.3)
        dist = pairwise_distance(features)
    assert got.dtype == dist.dtype == torch.float32
    assert _relative(got, expected) < 1e-4
    assert _relative(dist, expected_dist) < 1e-4
    assert dist.diagonal().max().item() < 0.1  # an anchor's distance to itself


# Every loss on (a, b) images (or features); the inputs arrive as bf16, as a generator's output does under autocast.
FULL_PRECISION = {
    **PRIORS,
    "dcp35": lambda c, h: dcp_loss(c),
    "airlight": lambda c, h: estimate_airlight(h),
    "translation": translation_loss,
    "consistency": consistency_loss,
    "lsgan": lambda c, h: lsgan_loss(c, True) + lsgan_loss(h, False),
    "cross_entropy": lambda c, h: cross_entropy(c.flatten(1), torch.arange(c.shape[0])),
}


@pytest.mark.parametrize("name", sorted(FULL_PRECISION))
def test_losses_and_priors_are_float32_on_bf16_images_under_autocast(name):
    clear = _images(20, (3, 3, 40, 40)).float().bfloat16()
    hazy = (0.5 * _images(21, (3, 3, 40, 40)).float() + 0.5).bfloat16()
    expected = FULL_PRECISION[name](clear.float(), hazy.float())
    with torch.autocast(**BF16):
        got = FULL_PRECISION[name](clear, hazy)
    plain = FULL_PRECISION[name](clear, hazy)  # bf16 inputs without autocast: float32 all the same
    for value in (got, plain):
        assert value.dtype == torch.float32
        assert _relative(value, expected) < 1e-4


@pytest.mark.parametrize("sizes", [(4, 4), (6, 3)])
def test_batched_discriminator_pass_equals_two_passes(sizes):
    """One pass over real + generated gives the loss and gradients of two (InstanceNorm is per image), with each
    kind's own mean when the batches differ in size (stage 3: P x K real images, fewer generated ones). In float64,
    so that only the summation order of the weight gradients over the batch differs."""
    torch.manual_seed(0)
    disc = PatchDiscriminator(base_channels=8).double()
    real = torch.rand(sizes[0], 3, 48, 48, dtype=torch.float64)
    generated = torch.rand(sizes[1], 3, 48, 48, dtype=torch.float64, requires_grad=True)
    losses, grads = [], []
    for batched in (False, True):
        disc.zero_grad(set_to_none=True)
        generated.grad = None
        loss = discriminator_loss(disc, real, generated, batched=batched)
        loss.backward()
        losses.append(loss.detach())
        grads.append([p.grad.clone() for p in disc.parameters()] + [generated.grad.clone()])
    expected = 0.5 * (((disc(real) - 1) ** 2).mean() + (disc(generated) ** 2).mean())
    torch.testing.assert_close(losses[0], expected.detach(), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-12, atol=1e-14)
    for separate, together in zip(*grads):
        torch.testing.assert_close(together, separate, rtol=1e-10, atol=1e-13)


def test_batched_discriminator_pass_is_one_call():
    calls = []
    disc = PatchDiscriminator(base_channels=8)
    disc.register_forward_hook(lambda module, args, out: calls.append(args[0].shape[0]))
    discriminator_loss(disc, torch.rand(3, 3, 32, 32), torch.rand(2, 3, 32, 32), batched=True)
    discriminator_loss(disc, torch.rand(3, 3, 32, 32), torch.rand(2, 3, 32, 32))
    assert calls == [5, 3, 2]
