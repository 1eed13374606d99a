"""Label-free proxies of ReID quality on unlabelled real images, for choosing a checkpoint without labels.

A real image ``x`` of ``domain`` (clear in stage 2, hazy in stage 3) is read by its own branch and
translated to the other domain, ``t`` (dehazed in stage 3, re-hazed in stage 2), which the other branch
reads; ``t`` translated back is ``x''``. Over a set of held-out images:

* ``cycle_psnr``: mean PSNR of ``x''`` against ``x`` (dB): how well the translators keep the image;
* ``agreement``: mean cosine similarity of the BN features of ``x`` (own branch) and ``t`` (other
  branch): whether both branches see the same vehicle;
* ``knn_overlap``: mean fraction of each image's ``k`` nearest neighbours (cosine, among the held-out
  images) that both feature sets share: whether both branches rank the set alike.

All three are "higher is better" and read no label. Whether any of them tracks the labelled test mAP
is measured, not assumed (``benchmarks/adaptation.py``).
"""

from typing import Dict, Iterable, Mapping, Optional

import torch
import torch.nn.functional as F

from ..modeling.rvsl_model import OTHER
from ..utils.misc import autocast
from .distance import check_finite
from .quality import psnr



def knn_overlap(a: torch.Tensor, b: torch.Tensor, k: int) -> float:
    """Mean over rows of |kNN_a(i) & kNN_b(i)| / k, neighbours by cosine similarity, each row excluding itself."""
    n = a.shape[0]
    k = min(k, n - 1)
    if k < 1:
        raise ValueError(f"knn_overlap needs at least 2 images, got {n}")

    def neighbours(x: torch.Tensor) -> torch.Tensor:
        x = F.normalize(x.float(), dim=1)
        sim = x @ x.t()
        sim.fill_diagonal_(-float("inf"))
        return sim.topk(k, dim=1).indices

    na, nb = neighbours(a), neighbours(b)
    shared = (na[:, :, None] == nb[:, None, :]).any(-1).sum(1)
    return float(shared.float().mean() / k)


@torch.no_grad()
def real_proxies(model: torch.nn.Module, loader: Iterable[Mapping], domain: str, device: torch.device,
                 amp_dtype: Optional[torch.dtype] = None, k: int = 5) -> Dict[str, float]:
    """``cycle_psnr``, ``agreement`` and ``knn_overlap`` of the real images of ``loader`` (batches with "img")."""
    other = OTHER[domain]
    render = {"clear": model.render_clear, "hazy": model.render_hazy}
    was_training = model.training
    model.eval()
    own, translated_feats, psnrs = [], [], []
    try:
        with autocast(device, amp_dtype):
            for batch in loader:
                x = batch["img"].to(device, non_blocking=True)
                f1, r1 = model.encode(x, domain)
                t = render[other](f1, r1)
                f1_t, r1_t = model.encode(t, other)
                cycled = render[domain](f1_t, r1_t)
                own.append(model.embed(r1).bn_feat)
                translated_feats.append(model.embed(r1_t).bn_feat)
                psnrs.append(psnr(cycled.float(), x.float()))
    finally:
        model.train(was_training)
    a, b = torch.cat(own).float(), torch.cat(translated_feats).float()
    check_finite(a, f"real {domain}")
    check_finite(b, f"translated ({other})")
    return {"cycle_psnr": float(torch.cat(psnrs).mean()),
            "agreement": float(F.cosine_similarity(a, b, dim=1).mean()),
            "knn_overlap": knn_overlap(a, b, k)}
