"""The demo's plan: its three sources (one per domain of the layout) and which image goes where.

Every random draw of the generator comes from :func:`stream`, a numpy Generator seeded by
``(seed, source, identity or camera, image index, tag)``, so the output does not depend on the
order of work and the same seed gives byte-identical files.
"""

from dataclasses import dataclass
from typing import List, Tuple

import numpy as np

from rvsl import layout
from rvsl.layout import LayoutFolder

# Counts and sizes: every knob of the dataset's shape lives here.
DEFAULT_SIZE = 128            # output images are SIZE x SIZE
DEFAULT_SEED = 0
SUPERSAMPLE = 2               # scenes are drawn at SUPERSAMPLE x SIZE, then area-downsampled
N_CAMERAS = 6                 # cameras per source
CAMS_PER_ID = (3, 4)          # an identity is seen by this many cameras (inclusive range)
TRAIN_IMAGES = (4, 6)         # images per training identity
QUERY_IMAGES = (1, 2)         # query images per test identity
GALLERY_IMAGES = (3, 5)       # gallery images per test identity
JPEG_QUALITY_SYN = 95         # synthetic renders are clean
JPEG_QUALITY_REAL = (68, 86)  # "real" cameras compress harder (per camera)


@dataclass(frozen=True)
class Source:
    """One demo source: its layout domain, seed code and identity/camera ranges."""

    domain: str
    code: int                 # seeds: keeps the sources' random streams apart
    train_ids: int
    test_ids: int
    train_pid0: int           # first training identity
    test_pid0: int            # first query/gallery identity
    cam0: int                 # first camera number
    dev_ids: int = 0          # identities of the labelled dev query/gallery (its own identity range)
    dev_pid0: int = 0         # first dev identity


SOURCES: Tuple[Source, ...] = (
    Source(layout.SYN, 1, 60, 20, 1, 1001, 1),
    Source(layout.REAL_CLEAR, 2, 60, 20, 20001, 21001, 101),
    Source(layout.REAL_HAZY, 3, 60, 20, 30001, 31001, 201, dev_ids=20, dev_pid0=32001),
)

# Seed tags: the second-to-last word of every seed sequence says what the stream is for.
T_VEHICLE, T_PLAN, T_CAMERA, T_IMAGE, T_HAZE, T_STYLE = 11, 12, 13, 14, 15, 16


def stream(seed: int, *keys: int) -> np.random.Generator:
    """A Generator determined only by ``seed`` and the integer ``keys``."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), *[int(k) for k in keys]]))


@dataclass(frozen=True)
class Job:
    """One image to render: its source, split, identity, camera and index within the identity."""

    src: Source
    split: str
    pid: int
    cam: int
    k: int
    frame: int

    def folder(self, condition: str) -> LayoutFolder:
        """The layout folder of this image in ``condition`` (clear or hazy)."""
        return layout.find(self.src.domain, self.split, condition)

    @property
    def name(self) -> str:
        """VeRi-Wild style file name ``PPPPP_cCCC_FFFFFF_K.jpg``."""
        return f"{self.pid:05d}_c{self.cam:03d}_{self.frame:06d}_{self.k}.jpg"


def _scaled(n: int, scale: float) -> int:
    """An identity count scaled by ``scale`` (at least 3, so every split stays usable)."""
    return max(3, int(round(n * scale)))


def plan_identity(seed: int, src: Source, pid: int, test: bool, prefix: str = "") -> List[Job]:
    """The images of one identity: training images, or query then gallery images (dev ones: ``prefix`` dev_)."""
    rng = stream(seed, src.code, pid, T_PLAN)
    n_cams = int(rng.integers(CAMS_PER_ID[0], CAMS_PER_ID[1] + 1))
    cams = [src.cam0 + int(c) for c in rng.choice(N_CAMERAS, size=n_cams, replace=False)]
    if test:
        n_query = int(rng.integers(QUERY_IMAGES[0], QUERY_IMAGES[1] + 1))
        n_gallery = int(rng.integers(GALLERY_IMAGES[0], GALLERY_IMAGES[1] + 1))
        # queries come from cams[0] (and cams[1]); the gallery cycles from cams[1] on, so it holds
        # cams[1] and cams[2] at least: every query keeps a match from another camera
        slots = [(prefix + "query", cams[min(i, 1)]) for i in range(n_query)]
        slots += [(prefix + "gallery", cams[(1 + i) % n_cams]) for i in range(n_gallery)]
    else:
        n_img = int(rng.integers(TRAIN_IMAGES[0], TRAIN_IMAGES[1] + 1))
        slots = [("train", cams[i % n_cams]) for i in range(n_img)]
    frames = np.sort(rng.choice(999_999, size=len(slots), replace=False) + 1)
    return [Job(src, split, pid, cam, k, int(frames[k])) for k, (split, cam) in enumerate(slots)]


def build_plan(seed: int, scale: float = 1.0) -> List[Job]:
    """Every image of the dataset (all sources and splits), in a fixed order."""
    jobs: List[Job] = []
    for src in SOURCES:
        for i in range(_scaled(src.train_ids, scale)):
            jobs += plan_identity(seed, src, src.train_pid0 + i, test=False)
        for i in range(_scaled(src.test_ids, scale)):
            jobs += plan_identity(seed, src, src.test_pid0 + i, test=True)
        for i in range(_scaled(src.dev_ids, scale) if src.dev_ids else 0):
            jobs += plan_identity(seed, src, src.dev_pid0 + i, test=True, prefix="dev_")
    return jobs


# --------------------------------------------------------------------------------------------
