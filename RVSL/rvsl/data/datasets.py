"""Torch datasets over FVRID records; every item is a dict of tensors."""

import random
from typing import Dict, Optional, Sequence, Tuple

from torch.utils.data import Dataset

from .fvrid import ImageRecord, PairRecord
from .transforms import Augment, joint_augment, read_image, read_image_uint8, to_uint8


class _TrainDataset(Dataset):
    """Training items read at ``size``, one random augmentation shared by all images of an item, as uint8.

    Items are indexed by ``(index, augmentation seed)`` pairs (:class:`~rvsl.data.samplers.SeededBatches`).
    """

    def __init__(self, items: Sequence, size: Tuple[int, int], augment: Augment):
        self.items = list(items)
        self.size = tuple(size)
        self.augment = augment

    def __len__(self) -> int:
        return len(self.items)

    def read(self, seed: int, *paths: str):
        """The images at ``paths``, augmented identically by a draw from ``seed``, as uint8 (scaled to [0, 1] on
        the device)."""
        images = joint_augment([read_image(path, self.size) for path in paths], self.augment, random.Random(seed))
        return [to_uint8(image) for image in images]


class PairDataset(_TrainDataset):
    """Synthetic clear/hazy twins with identity labels: ``{"clear", "hazy", "pid", "camid"}``."""

    def __getitem__(self, item: Tuple[int, int]) -> Dict:
        index, seed = item
        pair: PairRecord = self.items[index]
        clear, hazy = self.read(seed, pair.clear, pair.hazy)
        return {"clear": clear, "hazy": hazy, "pid": pair.pid, "camid": pair.camid}


class UnlabelledDataset(_TrainDataset):
    """Real training images as bare paths: ``{"img"}``. Identities are never parsed or returned."""

    def __getitem__(self, item: Tuple[int, int]) -> Dict:
        index, seed = item
        (image,) = self.read(seed, self.items[index])
        return {"img": image}


class ImageListDataset(Dataset):
    """Images by path at test size, unaugmented: ``{"img", "path"}``. Names are never parsed.

    With ``uint8`` the images stay uint8 (a quarter of the bytes to the device, scaled there by ``to_device``).
    """

    def __init__(self, paths: Sequence[str], size: Tuple[int, int], uint8: bool = False):
        self.paths = list(paths)
        self.size = tuple(size)
        self.read = read_image_uint8 if uint8 else read_image

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Dict:
        return {"img": self.read(self.paths[index], self.size), "path": self.paths[index]}


class TestDataset(Dataset):
    """Query then gallery images: ``{"img", "pid", "camid", "path"}`` plus ``"twin"`` (clear twin) if given."""

    def __init__(self, records: Sequence[ImageRecord], size: Tuple[int, int],
                 twin_paths: Optional[Sequence[str]] = None):
        self.records = list(records)
        self.size = tuple(size)
        self.twin_paths = list(twin_paths) if twin_paths is not None else None

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> Dict:
        record = self.records[index]
        item = {"img": read_image(record.path, self.size), "pid": record.pid, "camid": record.camid,
                "path": record.path}
        if self.twin_paths is not None:
            item["twin"] = read_image(self.twin_paths[index], self.size)
        return item
