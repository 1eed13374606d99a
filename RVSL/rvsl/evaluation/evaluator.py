"""The ReID evaluator (reset / process / evaluate) and ``inference_on_dataset``, which drives a model over
a test loader: clear-path, hazy-path and fused features, ranking metrics and generator image quality."""

import contextlib
import logging
import time
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .distance import METRICS, compute_distance
from .quality import psnr, ssim
from .rank import evaluate_features, evaluate_rank
from .rerank import re_ranking
from .visualize import save_rank_list, save_triplets

logger = logging.getLogger(__name__)

PATHS = ("clear", "hazy")
RANKS = (1, 5, 10)


class ReIDEvaluator:
    """Collects clear-path and hazy-path features; the first ``num_query`` rows are queries, the rest gallery.

    Features stay on the device they arrive on (as float32), so on a GPU the ranking runs there too;
    that costs 2 x images x dim x 4 bytes of device memory (0.7 GB for VeRi-Wild-small at d=2048).
    ``evaluate`` gives, per path ("clear", "hazy" and, when both were given, "fusion" = mean of the two
    L2-normalised features), {"mAP", "rank1", "rank5", "rank10", "mINP"} as fractions.
    """

    def __init__(self, num_query: int, distance: str = "euclidean", rerank: bool = False,
                 k1: int = 20, k2: int = 6, lambda_value: float = 0.3) -> None:
        if num_query < 1:
            raise ValueError(f"num_query must be >= 1, got {num_query}")
        if distance not in METRICS:
            raise ValueError(f"distance must be one of {METRICS}, got {distance!r}")
        self.num_query = num_query
        self.distance = distance
        self.rerank = rerank
        self.rerank_params = (k1, k2, lambda_value)
        self.reset()

    def reset(self) -> None:
        """Forget all processed rows."""
        self._feats: Dict[str, List[torch.Tensor]] = {}
        self._pids: List[torch.Tensor] = []
        self._camids: List[torch.Tensor] = []
        self._paths: List[str] = []

    @property
    def num_images(self) -> int:
        """Rows processed so far."""
        return sum(int(p.numel()) for p in self._pids)

    @property
    def has_paths(self) -> bool:
        """Whether every processed row came with its image path (needed for rank lists)."""
        return len(self._paths) == self.num_images > 0

    def process(self, feats: Mapping[str, torch.Tensor], pids: Union[torch.Tensor, Sequence[int]],
                camids: Union[torch.Tensor, Sequence[int]], paths: Optional[Sequence[str]] = None) -> None:
        """Add a batch: ``feats`` maps "clear" and/or "hazy" to B x D features; ids (and paths) have B entries."""
        names = set(feats)
        if not names or not names <= set(PATHS):
            raise ValueError(f"feats keys must be a non-empty subset of {PATHS}, got {sorted(names)}")
        if self._feats and names != set(self._feats):
            raise ValueError(f"feats keys changed from {sorted(self._feats)} to {sorted(names)}")
        pids_t = torch.as_tensor(pids).detach().reshape(-1).long().cpu()
        camids_t = torch.as_tensor(camids).detach().reshape(-1).long().cpu()
        batch = pids_t.numel()
        if camids_t.numel() != batch or (paths is not None and len(paths) != batch):
            raise ValueError(f"batch has {batch} pids but {camids_t.numel()} camids"
                             + ("" if paths is None else f" and {len(paths)} paths"))
        for name in sorted(names):
            f = feats[name]
            if f.dim() != 2 or f.shape[0] != batch:
                raise ValueError(f"feats[{name!r}] must be {batch} x D, got {tuple(f.shape)}")
            self._feats.setdefault(name, []).append(f.detach().float())
        self._pids.append(pids_t)
        self._camids.append(camids_t)
        if paths is not None:
            self._paths.extend(str(p) for p in paths)

    def features(self, name: str) -> torch.Tensor:
        """All rows of one path's features ("clear", "hazy" or "fusion")."""
        if name == "fusion":
            if set(self._feats) != set(PATHS):
                raise ValueError("fusion needs both clear and hazy features")
            return (F.normalize(self.features("clear"), dim=1) + F.normalize(self.features("hazy"), dim=1)) / 2
        if name not in self._feats:
            raise ValueError(f"no {name!r} features were processed (have {sorted(self._feats)})")
        return torch.cat(self._feats[name])

    def _ids(self) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(q_pids, g_pids, q_camids, g_camids), after checking there is a gallery."""
        if self.num_images <= self.num_query:
            raise ValueError(f"{self.num_images} images processed but num_query is {self.num_query}: "
                             "no gallery to rank")
        pids, camids, nq = torch.cat(self._pids), torch.cat(self._camids), self.num_query
        return pids[:nq], pids[nq:], camids[:nq], camids[nq:]

    def evaluate(self) -> Dict[str, Dict[str, float]]:
        """Ranking metrics for each path (and fusion when both paths are present)."""
        q_pids, g_pids, q_camids, g_camids = self._ids()
        names = [n for n in PATHS if n in self._feats] + (["fusion"] if set(self._feats) == set(PATHS) else [])
        results: Dict[str, Dict[str, float]] = {}
        for name in names:
            start = time.perf_counter()
            feats = self.features(name)
            qf, gf = feats[: self.num_query], feats[self.num_query:]
            if self.rerank:
                k1, k2, lam = self.rerank_params
                dist = re_ranking(qf, gf, k1, k2, lam, metric=self.distance)
                cmc, mean_ap, minp = evaluate_rank(dist, q_pids, g_pids, q_camids, g_camids)
                del dist
            else:
                cmc, mean_ap, minp = evaluate_features(qf, gf, q_pids, g_pids, q_camids, g_camids, self.distance)
            results[name] = {"mAP": mean_ap, **{f"rank{k}": float(cmc[k - 1]) for k in RANKS}, "mINP": minp}
            logger.debug("%s: mAP %.2f%%, rank-1 %.2f%%, mINP %.2f%% (%d x %d, %s%s, %.1f s)", name,
                        100 * mean_ap, 100 * cmc[0], 100 * minp, qf.shape[0], gf.shape[0], self.distance,
                        ", re-ranked" if self.rerank else "", time.perf_counter() - start)
        return results

    def save_rank_lists(self, out_dir: Union[str, Path], num_queries: int = 10, topk: int = 10) -> List[Path]:
        """``rank_<path>.png`` in ``out_dir`` for the first queries of each path; needs the paths given to ``process``.

        The pictures rank by the plain distance (never re-ranked, which would cost a full re-ranking pass).
        """
        if not self.has_paths:
            raise ValueError("rank lists need the image paths: pass paths= to process()")
        q_pids, g_pids, q_camids, g_camids = self._ids()
        n = min(num_queries, self.num_query)
        names = [p for p in PATHS if p in self._feats] + (["fusion"] if set(self._feats) == set(PATHS) else [])
        written = []
        for name in names:
            feats = self.features(name)
            dist = compute_distance(feats[:n], feats[self.num_query:], self.distance)
            written.append(save_rank_list(dist, q_pids[:n], g_pids, q_camids[:n], g_camids,
                                          self._paths[:n], self._paths[self.num_query:],
                                          Path(out_dir) / f"rank_{name}.png", topk))
        return written


def _same_size(images: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """float32 images resized (bilinear) to ``like``'s height and width when they differ."""
    images = images.float()
    if images.shape[-2:] != like.shape[-2:]:
        images = F.interpolate(images, size=like.shape[-2:], mode="bilinear", align_corners=False)
    return images


def inference_on_dataset(
    model: torch.nn.Module,
    loader: Iterable[Mapping],
    num_query: int,
    device: torch.device,
    amp_dtype: Optional[torch.dtype] = None,
    distance: str = "euclidean",
    rerank: bool = False,
    rerank_params: Tuple[int, int, float] = (20, 6, 0.3),
    vis_dir: Optional[Union[str, Path]] = None,
    vis_num: int = 10,
) -> Dict[str, Dict[str, float]]:
    """Evaluate ``model`` on a test loader whose first ``num_query`` images are the queries.

    Every image goes through both encoders; BN features feed a ``ReIDEvaluator``. Batches with "gt"
    (the clear twin of the hazy "img", synthetic test set) also score the generators: dehaze =
    G_C(E_H(img)) vs gt and rehaze = G_H(E_C(gt)) vs img. Returns {"clear", "hazy", "fusion"} metrics
    plus "quality": {"dehaze_psnr", "dehaze_ssim", "rehaze_psnr", "rehaze_ssim"} (means) when gt was
    present. ``vis_dir`` writes rank lists and input / dehazed / re-hazed triplets of the first
    ``vis_num`` images (re-hazed = G_H(E_C(dehazed)), the cycle back to the input).
    Autocast with ``amp_dtype`` is used on CUDA only; the model's train/eval mode is restored after.
    """
    device = torch.device(device)
    k1, k2, lam = rerank_params
    evaluator = ReIDEvaluator(num_query, distance, rerank, k1, k2, lam)
    quality_sums = {k: 0.0 for k in ("dehaze_psnr", "dehaze_ssim", "rehaze_psnr", "rehaze_ssim")}
    quality_count = 0
    triplets: List[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    num_vis = 0
    use_amp = amp_dtype is not None and device.type == "cuda"
    autocast = torch.autocast(device.type, dtype=amp_dtype) if use_amp else contextlib.nullcontext()
    was_training = model.training
    model.eval()
    start = time.perf_counter()
    try:
        with torch.no_grad(), autocast:
            for batch in tqdm(loader, desc="features", unit="batch", dynamic_ncols=True, leave=False, disable=None):
                img = batch["img"].to(device, non_blocking=True)
                enc_clear = model.encode(img, "clear")
                enc_hazy = model.encode(img, "hazy")
                feats = {"clear": model.embed(enc_clear[1]).bn_feat, "hazy": model.embed(enc_hazy[1]).bn_feat}
                evaluator.process(feats, batch["pid"], batch["camid"], batch.get("path"))
                dehazed = None
                if "twin" in batch:
                    gt = batch["twin"].to(device, non_blocking=True)
                    dehazed = _same_size(model.render_clear(*enc_hazy), gt)
                    rehazed = _same_size(model.render_hazy(*model.encode(gt, "clear")), img)
                    quality_sums["dehaze_psnr"] += float(psnr(dehazed, gt).sum())
                    quality_sums["dehaze_ssim"] += float(ssim(dehazed, gt).sum())
                    quality_sums["rehaze_psnr"] += float(psnr(rehazed, img).sum())
                    quality_sums["rehaze_ssim"] += float(ssim(rehazed, img).sum())
                    quality_count += img.shape[0]
                if vis_dir is not None and num_vis < vis_num:
                    take = min(vis_num - num_vis, img.shape[0])
                    if dehazed is None:
                        dehazed = _same_size(model.render_clear(*enc_hazy), img)
                    cycle = _same_size(model.render_hazy(*model.encode(dehazed[:take], "clear")), img)
                    triplets.append((img[:take].float().cpu(), dehazed[:take].cpu(), cycle.cpu()))
                    num_vis += take
    finally:
        model.train(was_training)
    logger.info("extracted features of %d images in %.1f s", evaluator.num_images, time.perf_counter() - start)

    results: Dict[str, Dict[str, float]] = dict(evaluator.evaluate())
    if quality_count:
        results["quality"] = {k: v / quality_count for k, v in quality_sums.items()}
        logger.debug("image quality over %d images: %s", quality_count,
                    ", ".join(f"{k} {v:.4f}" for k, v in results["quality"].items()))
    if vis_dir is not None:
        written = []
        if evaluator.has_paths:
            written += evaluator.save_rank_lists(vis_dir, vis_num)
        else:
            logger.warning("batches carry no 'path': rank lists skipped")
        if triplets:
            written.append(save_triplets(*(torch.cat(parts) for parts in zip(*triplets)),
                                         Path(vis_dir) / "triplets.png"))
        logger.info("wrote %s", ", ".join(str(p) for p in written))
    return results
