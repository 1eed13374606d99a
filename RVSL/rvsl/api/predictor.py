"""``Predictor``: features, dehazed and re-hazed images from a trained RVSL model, for any images."""

import logging
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..checkpoint import load_inference_model, test_size
from ..config import CfgNode, get_cfg_defaults
from ..data.build import make_loader
from ..data.datasets import ImageListDataset
from ..data.fvrid import scan_folder, warn_skipped
from ..utils.errors import InputError
from ..utils.misc import amp_dtype, autocast, channels_last, resolve_device, to_device

logger = logging.getLogger(__name__)

Images = Union[str, Path, np.ndarray, torch.Tensor, Sequence[Union[str, Path, np.ndarray, torch.Tensor]]]


def image_paths(source: Union[str, Path], key: str = "") -> List[str]:
    """The image files of a folder (sorted; other files skipped with a warning), or ``[source]`` for one file.

    ``key`` names the option that gave ``source`` in error messages.
    """
    path = Path(source)
    if path.is_dir():
        scan = scan_folder(str(path), key, labelled=False)  # names never parsed; undecodable files fail when read
        warn_skipped("not_an_image", "not an image file", [entry for entry, _ in scan.ignored])
        if not scan.images:
            raise InputError(f"{key + ': ' if key else ''}no image in {source}")
        return scan.images
    if path.is_file():
        return [str(path)]
    raise InputError(f"{key + ': ' if key else ''}no such file or folder: {source}")


def _as_batch(image: Union[np.ndarray, torch.Tensor], size: Tuple[int, int]) -> torch.Tensor:
    """N x 3 x H x W float in [0, 1] at ``size`` from uint8 RGB arrays (H x W x 3, N x H x W x 3) or tensors.

    uint8 arrays are resized like ``read_image`` (OpenCV bilinear on 8-bit values), so an array and the
    file it came from give the same features; tensors (3 x H x W or N x 3 x H x W) bilinearly.
    """
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim not in (3, 4) or image.shape[-1] != 3:
            raise InputError(f"arrays must be uint8 RGB, H x W x 3 or N x H x W x 3; got {image.dtype} {image.shape}")
        frames = image[None] if image.ndim == 3 else image
        frames = [f if f.shape[:2] == size else cv2.resize(f, size[::-1], interpolation=cv2.INTER_LINEAR)
                  for f in frames]
        return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float().div_(255.0)
    if not isinstance(image, torch.Tensor):
        raise InputError(f"images must be paths, uint8 arrays or tensors, got {type(image).__name__}")
    tensor = image.detach().cpu()
    tensor = tensor.unsqueeze(0) if tensor.dim() == 3 else tensor
    if tensor.dim() != 4 or tensor.shape[1] != 3:
        raise InputError(f"image tensors must be 3 x H x W or N x 3 x H x W, got shape {tuple(tensor.shape)}")
    tensor = tensor.float().div_(255.0) if tensor.dtype == torch.uint8 else tensor.float()
    if tuple(tensor.shape[-2:]) != size:
        tensor = F.interpolate(tensor, size=size, mode="bilinear", align_corners=False)
    return tensor


class Predictor:
    """A trained RVSL model for use: features of any images, dehazed (G_C) and re-hazed (G_H) images.

    ``checkpoint`` is an RVSL checkpoint or a reference-format state dict (built from ``cfg``, the
    defaults if None). Images are given as a file or folder path, a list of paths, uint8 RGB arrays
    (H x W x 3 or N x H x W x 3) or float tensors in [0, 1] (3 x H x W or N x 3 x H x W); they are
    resized to the model's ``INPUT.SIZE_TEST`` (``size``, (height, width), overrides it) and run in batches of
    ``batch_size``. ``key`` names the checkpoint's source (an option or config key) in error messages.

    On CUDA the model runs as the trainer's does: autocast of ``cfg``'s ``SOLVER.AMP`` (auto: bf16 where
    supported) and channels-last (``MODEL.CHANNELS_LAST``), and image files are decoded by
    ``DATALOADER.NUM_WORKERS`` loader workers into pinned uint8 batches, ``DATALOADER.PREFETCH`` ahead. On the
    CPU: float32, decoding in this process. Outputs are float32 either way.
    """

    def __init__(self, checkpoint: str, device: str = "auto", batch_size: int = 32,
                 cfg: Optional[CfgNode] = None, key: str = "checkpoint",
                 size: Optional[Sequence[int]] = None) -> None:
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        self.device = resolve_device(device)
        self.run_cfg = cfg or get_cfg_defaults()  # this run's settings (the checkpoint's config builds the model)
        model, self.cfg, self.info = load_inference_model(str(checkpoint), key, self.run_cfg)
        self.model = model.to(self.device)
        self.amp_dtype = amp_dtype(self.run_cfg.SOLVER.AMP, self.device)
        self.channels_last = channels_last(self.run_cfg.MODEL.CHANNELS_LAST, self.device, self.model)
        self.size: Tuple[int, int] = test_size(self.cfg, size)
        self.batch_size = batch_size

    def _batches(self, images: Images) -> Iterator[torch.Tensor]:
        """The images as resized N x 3 x H x W batches on the device (a folder's in :func:`image_paths` order)."""
        items = list(images) if isinstance(images, (list, tuple)) else [images]
        paths: List[str] = []
        tensors: List[torch.Tensor] = []
        for item in items:
            if isinstance(item, (str, Path)):
                paths.extend(image_paths(item))
            else:
                tensors.append(_as_batch(item, self.size))
        if paths and tensors:
            raise InputError("give either image paths or image arrays/tensors, not both")
        if paths:
            total = len(paths)
            workers = self.run_cfg.DATALOADER.NUM_WORKERS if self.device.type == "cuda" else 0
            loader = make_loader(self.run_cfg, ImageListDataset(paths, self.size, uint8=True), num_workers=workers,
                                 batch_size=self.batch_size, shuffle=False)
            loaded: Iterable[torch.Tensor] = (batch["img"] for batch in loader)
        else:
            stacked = torch.cat(tensors) if tensors else torch.zeros(0, 3, *self.size)
            total = len(stacked)
            loaded = (stacked[i:i + self.batch_size] for i in range(0, total, self.batch_size))
        if total == 0:
            raise InputError("no images given")
        steps = -(-total // self.batch_size)
        for batch in tqdm(loaded, total=steps, desc="images", unit="batch", disable=steps < 4, leave=False):
            yield to_device(batch, self.device, self.channels_last)

    def _stream(self, images: Images, fn: Callable[[torch.Tensor], Dict[str, torch.Tensor]]
                ) -> Iterator[Dict[str, np.ndarray]]:
        """``fn`` of every batch (no gradients, under the run's autocast), each output as a float32 numpy array."""
        for batch in self._batches(images):
            with torch.no_grad(), autocast(self.device, self.amp_dtype):
                outputs = fn(batch)
            yield {name: value.float().cpu().numpy() for name, value in outputs.items()}

    def _run(self, images: Images, fn: Callable[[torch.Tensor], Dict[str, torch.Tensor]]) -> Dict[str, np.ndarray]:
        """Apply ``fn`` to every batch; concatenate each named output into a float32 numpy array."""
        parts: Dict[str, List[np.ndarray]] = {}
        for outputs in self._stream(images, fn):
            for name, value in outputs.items():
                parts.setdefault(name, []).append(value)
        return {name: np.concatenate(values) for name, values in parts.items()}

    def features(self, images: Images) -> Dict[str, np.ndarray]:
        """{"clear", "hazy", "fused"}: N x D float32 test-time features (BN features; fused as in evaluation)."""
        def step(batch: torch.Tensor) -> Dict[str, torch.Tensor]:
            clear, hazy = self.model(batch, "clear").float(), self.model(batch, "hazy").float()
            return {"clear": clear, "hazy": hazy, "fused": self.model.fused_feature(clear, hazy)}
        return self._run(images, step)

    def _dehaze(self, batch: torch.Tensor) -> Dict[str, torch.Tensor]:
        return {"out": self.model.translate(batch, "hazy")}

    def dehaze(self, images: Images) -> np.ndarray:
        """G_C(E_H(image)): N x 3 x H x W float32 RGB in [0, 1] at SIZE_TEST."""
        return self._run(images, self._dehaze)["out"]

    def dehazed_batches(self, images: Images) -> Iterator[np.ndarray]:
        """:meth:`dehaze` batch by batch, in input order (for more images than memory holds at once)."""
        return (outputs["out"] for outputs in self._stream(images, self._dehaze))

    def rehaze(self, images: Images) -> np.ndarray:
        """G_H(E_C(image)): N x 3 x H x W float32 RGB in [0, 1] at SIZE_TEST."""
        return self._run(images, lambda b: {"out": self.model.translate(b, "clear")})["out"]
