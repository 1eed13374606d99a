"""Torch datasets over FVRID records; every item is a dict of tensors."""

from typing import Dict, Optional, Sequence, Tuple

from torch.utils.data import Dataset

from .fvrid import ImageRecord, PairRecord
from .transforms import joint_augment, read_image


class _TrainDataset(Dataset):
    """Training items read at ``size`` with one random flip and crop shared by all images of an item."""

    def __init__(self, items: Sequence, size: Tuple[int, int], flip_prob: float, padding: int):
        self.items = list(items)
        self.size = tuple(size)
        self.flip_prob = flip_prob
        self.padding = padding

    def __len__(self) -> int:
        return len(self.items)

    def read(self, *paths: str):
        """The images at ``paths``, augmented identically."""
        return joint_augment([read_image(path, self.size) for path in paths], self.flip_prob, self.padding)


class PairDataset(_TrainDataset):
    """Synthetic clear/hazy twins with identity labels: ``{"clear", "hazy", "pid", "camid"}``."""

    def __getitem__(self, index: int) -> Dict:
        pair: PairRecord = self.items[index]
        clear, hazy = self.read(pair.clear, pair.hazy)
        return {"clear": clear, "hazy": hazy, "pid": pair.pid, "camid": pair.camid}


class UnlabelledDataset(_TrainDataset):
    """Real training images as bare paths: ``{"img"}``. Identities are never parsed or returned."""

    def __getitem__(self, index: int) -> Dict:
        (image,) = self.read(self.items[index])
        return {"img": image}


class TestDataset(Dataset):
    """Query then gallery images: ``{"img", "pid", "camid", "path"}`` plus ``"twin"`` (clear twin) if given."""

    def __init__(self, records: Sequence[ImageRecord], size: Tuple[int, int],
                 gt_paths: Optional[Sequence[str]] = None):
        self.records = list(records)
        self.size = tuple(size)
        self.gt_paths = list(gt_paths) if gt_paths is not None else None

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> Dict:
        record = self.records[index]
        item = {"img": read_image(record.path, self.size), "pid": record.pid, "camid": record.camid,
                "path": record.path}
        if self.gt_paths is not None:
            item["twin"] = read_image(self.gt_paths[index], self.size)
        return item
