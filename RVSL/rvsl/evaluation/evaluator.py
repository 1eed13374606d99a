"""Evaluators with one shape (fast-reid's ``reset / process / evaluate``) and ``inference_on_dataset``,
which runs a model once per test batch and hands ``(batch, outputs)`` to every evaluator.

Test batches are dicts with "img" (B x 3 x H x W in [0, 1]: the hazy image on the synthetic set, the real
image otherwise), "pid", "camid", "path" and, on the synthetic set, "twin" (the clear twin of "img").
Outputs are "clear" and "hazy" (float32 BN features of the two branches: the clear branch reads the twin
when there is one, the image otherwise; the hazy branch reads the image) plus, only when an evaluator
asks for them (``needs(batch)``), the generator images named in ``base.IMAGE_OUTPUTS``.

In a distributed run every process runs the model on its own shard of the test set (the loaders of
``rvsl.data.build`` are sharded: contiguous runs of whole batches); ``inference_on_dataset`` then gathers
the evaluators' per-image results on rank 0 in rank order, which is the one-process order, evaluates
there, and gives every process the same results.
"""

import logging
import time
from pathlib import Path
from typing import Any, Dict, FrozenSet, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..modeling.rvsl_model import DOMAINS as BRANCHES
from ..modeling.rvsl_model import RVSL
from ..utils import comm
from ..utils.misc import autocast, to_device
from .base import DatasetEvaluator
from .distance import METRICS, check_finite, compute_distance
from .rank import evaluate_features, evaluate_rank
from .rerank import re_ranking
from .visualize import save_rank_list

logger = logging.getLogger(__name__)

RANKS = (1, 5, 10)
class RerankParams(NamedTuple):
    """k-reciprocal re-ranking parameters (Zhong et al., CVPR 2017; the paper's defaults)."""

    k1: int = 20
    k2: int = 6
    lambda_value: float = 0.3


FUSED = "fused"
RANKED_BRANCHES = (*BRANCHES, FUSED)  # the branches a ReID evaluation reports, in this order

class ReIDEvaluator(DatasetEvaluator):
    """Ranking metrics of the clear, hazy and fused branches; the first ``num_query`` rows are queries.

    ``distance`` is "euclidean" (squared Euclidean, which ranks like Euclidean) or "cosine"; ``rerank``
    re-ranks the distances. Features stay on the device they arrive on (float32), so on a GPU the ranking
    runs there too: 2 x images x dim x 4 bytes (0.7 GB for VeRi-Wild-small at d=2048). ``evaluate`` gives,
    per branch of :data:`RANKED_BRANCHES` ("clear", "hazy", and "fused" = :meth:`RVSL.fused_feature` of the
    two when both were given), {"mAP", "rank1", "rank5", "rank10", "mINP"} as fractions.
    """

    def __init__(self, num_query: int, distance: str = "euclidean", rerank: Optional[RerankParams] = None) -> None:
        if num_query < 1:
            raise ValueError(f"num_query must be >= 1, got {num_query}")
        if distance not in METRICS:
            raise ValueError(f"distance must be one of {METRICS}, got {distance!r}")
        self.num_query = num_query
        self.distance = distance
        self.rerank = rerank
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

    @property
    def branches(self) -> List[str]:
        """The branches processed, plus "fused" when both were."""
        names = [b for b in BRANCHES if b in self._feats]
        return names + ([FUSED] if len(names) == len(BRANCHES) else [])

    def process(self, batch: Mapping, outputs: Mapping[str, torch.Tensor]) -> None:
        """Add a batch: ids (and "path") from ``batch``, B x D features of "clear" and/or "hazy" from ``outputs``."""
        names = [b for b in BRANCHES if b in outputs]
        if not names:
            raise ValueError(f"outputs carry no branch feature (need one of {BRANCHES}, got {sorted(outputs)})")
        if self._feats and set(names) != set(self._feats):
            raise ValueError(f"branches changed from {sorted(self._feats)} to {sorted(names)}")
        pids = torch.as_tensor(batch["pid"]).detach().reshape(-1).long().cpu()
        camids = torch.as_tensor(batch["camid"]).detach().reshape(-1).long().cpu()
        paths: Optional[Sequence[str]] = batch.get("path")
        size = pids.numel()
        if camids.numel() != size or (paths is not None and len(paths) != size):
            raise ValueError(f"batch has {size} pids but {camids.numel()} camids"
                             + ("" if paths is None else f" and {len(paths)} paths"))
        for name in names:
            feat = outputs[name]
            if feat.dim() != 2 or feat.shape[0] != size:
                raise ValueError(f"{name} features must be {size} x D, got {tuple(feat.shape)}")
            self._feats.setdefault(name, []).append(feat.detach().float())
        self._pids.append(pids)
        self._camids.append(camids)
        if paths is not None:
            self._paths.extend(str(p) for p in paths)

    def state(self) -> Dict[str, Any]:
        """Features (moved to the CPU), identities, cameras and paths of the rows processed so far."""
        return {"feats": {name: torch.cat(feats).cpu() for name, feats in self._feats.items()},
                "pids": self._pids, "camids": self._camids, "paths": self._paths}

    def load_states(self, states: Sequence[Dict[str, Any]]) -> None:
        """Take the rows of every process's :meth:`state` in order; features go to this process's feature device."""
        device = next((feats[0].device for feats in self._feats.values()), torch.device("cpu"))
        self.reset()
        for state in states:
            for name, feat in state["feats"].items():
                self._feats.setdefault(name, []).append(feat.to(device))
            self._pids += state["pids"]
            self._camids += state["camids"]
            self._paths += state["paths"]

    def features(self, name: str) -> torch.Tensor:
        """All rows of one branch's features ("clear", "hazy" or "fused")."""
        if name == FUSED:
            if set(self._feats) != set(BRANCHES):
                raise ValueError("the fused feature needs both clear and hazy features")
            return RVSL.fused_feature(self.features("clear"), self.features("hazy"))
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

    def _rank(self, qf: torch.Tensor, gf: torch.Tensor, ids: Sequence[torch.Tensor]) -> Tuple[np.ndarray, float, float]:
        """(cmc, mAP, mINP) of one branch, re-ranked when asked."""
        if self.rerank is None:
            return evaluate_features(qf, gf, *ids, metric=self.distance)
        return evaluate_rank(re_ranking(qf, gf, *self.rerank, metric=self.distance), *ids)

    def evaluate(self) -> Dict[str, Dict[str, float]]:
        """Ranking metrics for each branch (and the fused feature when both branches are present)."""
        ids = self._ids()
        results: Dict[str, Dict[str, float]] = {}
        for name in self.branches:
            start = time.perf_counter()
            feats = self.features(name)
            check_finite(feats, name)
            cmc, mean_ap, minp = self._rank(feats[: self.num_query], feats[self.num_query:], ids)
            results[name] = {"mAP": mean_ap, **{f"rank{k}": float(cmc[k - 1]) for k in RANKS}, "mINP": minp}
            logger.debug("%s branch: mAP %.2f%%, rank-1 %.2f%%, mINP %.2f%% (%d x %d, %s%s, %.1f s)", name,
                         100 * mean_ap, 100 * cmc[0], 100 * minp, self.num_query, feats.shape[0] - self.num_query,
                         "squared Euclidean" if self.distance == "euclidean" else "cosine",
                         ", re-ranked" if self.rerank else "", time.perf_counter() - start)
        return results

    def save_rank_lists(self, out_dir: Union[str, Path], num_queries: int = 10, topk: int = 10) -> List[Path]:
        """``rank_<branch>.png`` in ``out_dir`` for the first queries of each branch; needs every batch's "path".

        The pictures rank by the plain distance (never re-ranked, which would cost a full re-ranking pass).
        """
        if not self.has_paths:
            raise ValueError("rank lists need the image paths: batches must carry 'path'")
        q_pids, g_pids, q_camids, g_camids = self._ids()
        n = min(num_queries, self.num_query)
        written = []
        for name in self.branches:
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


def run_model(model: torch.nn.Module, batch: Mapping, device: torch.device,
              needs: FrozenSet[str] = frozenset(), channels_last: bool = False) -> Dict[str, torch.Tensor]:
    """The outputs of one batch: "clear" = model(twin or img, "clear"), "hazy" = model(img, "hazy"), and the
    generator images in ``needs`` (resized to the input size; "rehazed" only when the batch has a twin).
    ``channels_last``: the images are laid out NHWC on the device, for a channels-last model."""
    img = to_device(batch["img"], device, channels_last)
    twin = to_device(batch["twin"], device, channels_last) if "twin" in batch else None
    clear_input = img if twin is None else twin
    outputs = {"clear": model(clear_input, "clear").float(), "hazy": model(img, "hazy").float()}
    if needs & {"dehazed", "cycled"}:
        outputs["dehazed"] = _same_size(model.translate(img, "hazy"), img)
    if "rehazed" in needs and twin is not None:
        outputs["rehazed"] = _same_size(model.translate(twin, "clear"), img)
    if "cycled" in needs:
        outputs["cycled"] = _same_size(model.translate(outputs["dehazed"], "clear"), img)
    return outputs


def inference_on_dataset(
    model: torch.nn.Module,
    loader: Iterable[Mapping],
    evaluators: Sequence[DatasetEvaluator],
    device: Union[str, torch.device],
    amp_dtype: Optional[torch.dtype] = None,
    channels_last: bool = False,
) -> Dict:
    """Reset the evaluators, run ``model`` once per batch (``run_model``), feed them, and merge their results.

    Autocast with ``amp_dtype`` is used on CUDA only (features are float32 regardless), and NHWC inputs with
    ``channels_last`` (for a model laid out channels-last, :func:`rvsl.utils.misc.channels_last`); the model's
    train/eval mode is restored after. Two evaluators returning the same key raise ValueError. In a
    distributed run ``loader`` is this process's shard and every process must call this: the shards'
    results are gathered on rank 0, which evaluates, and every process returns the same results.
    """
    device = torch.device(device)
    for evaluator in evaluators:
        evaluator.reset()
    was_training = model.training
    model.eval()
    start, num_images = time.perf_counter(), 0
    try:
        with torch.no_grad(), autocast(device, amp_dtype):
            for batch in tqdm(loader, desc="evaluation", unit="batch", dynamic_ncols=True, leave=False, disable=None):
                needs = frozenset().union(*(ev.needs(batch) for ev in evaluators))
                outputs = run_model(model, batch, device, needs, channels_last)
                for evaluator in evaluators:
                    evaluator.process(batch, outputs)
                num_images += int(batch["img"].shape[0])
    finally:
        model.train(was_training)
    shard = f" (process {comm.get_rank()} of {comm.get_world_size()})" if comm.get_world_size() > 1 else ""
    logger.info("ran the model on %d images%s in %.1f s", num_images, shard, time.perf_counter() - start)
    if comm.get_world_size() == 1:
        return _evaluate(evaluators)
    _gather_states(evaluators)
    return comm.broadcast(_evaluate(evaluators) if comm.is_main_process() else None)


def _gather_states(evaluators: Sequence[DatasetEvaluator]) -> None:
    """Give rank 0's evaluators the per-image results of every process's shard, in rank order."""
    states = comm.gather([evaluator.state() for evaluator in evaluators])
    if states is None:  # not rank 0
        return
    for evaluator, shards in zip(evaluators, zip(*states)):
        if shards[0] is not None:
            evaluator.load_states(shards)


def _evaluate(evaluators: Sequence[DatasetEvaluator]) -> Dict:
    """Every evaluator's results merged into one dict; two giving the same key raise ValueError."""
    results: Dict = {}
    for evaluator in evaluators:
        part = evaluator.evaluate()
        clash = set(part) & set(results)
        if clash:
            raise ValueError(f"{type(evaluator).__name__} returns keys already given: {sorted(clash)}")
        results.update(part)
    return results
