"""The evaluator shape shared by ReID metrics, image quality and pictures (fast-reid's DatasetEvaluator)."""

from typing import Any, Dict, FrozenSet, Mapping, Sequence

import torch

# dehazed = G_C(E_H(img)); rehazed = G_H(E_C(twin)) (batches with a twin only); cycled = G_H(E_C(dehazed))
IMAGE_OUTPUTS = ("dehazed", "rehazed", "cycled")


class DatasetEvaluator:
    """The evaluator shape: ``reset``, ``process(batch, outputs)`` per batch, then ``evaluate`` -> dict.

    ``needs(batch)`` names the generator images (of ``IMAGE_OUTPUTS``) that batch's outputs must carry.
    In a distributed run each process processes its shard of the test set; ``state`` and ``load_states``
    let ``inference_on_dataset`` hand every shard's per-image results to rank 0, which evaluates. An
    evaluator without them (the default) evaluates rank 0's shard alone.
    """

    def needs(self, batch: Mapping) -> FrozenSet[str]:
        """The generator images this evaluator will read for ``batch`` (none by default)."""
        return frozenset()

    def reset(self) -> None:
        """Forget everything processed."""

    def process(self, batch: Mapping, outputs: Mapping[str, torch.Tensor]) -> None:
        """Take one test batch and the model's outputs for it."""
        raise NotImplementedError

    def evaluate(self) -> Dict:
        """Results over the batches processed since the last reset (merged into one dict by the driver)."""
        raise NotImplementedError

    def state(self) -> Any:
        """Per-image results processed so far, picklable, tensors on the CPU, never images (None: none to gather)."""
        return None

    def load_states(self, states: Sequence[Any]) -> None:
        """Replace the processed results by ``states`` (from :meth:`state`) of every process, in rank order."""
