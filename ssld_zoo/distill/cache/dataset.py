"""Training from a teacher cache: stored views replayed, with the teacher's stored outputs.

Each image is decoded once per step and ``crops_per_image`` (m) of its stored views are cut from
it (FKD's multi-crop), so a loader batch of ``B / m`` images gives B views. Epoch ``e`` uses the
view slots ``e*m .. e*m + m - 1`` of every image; slot ``s`` is view ``s`` in the first pass over
the ``n`` views, and a fresh permutation of them in each later pass, so no view repeats before
all have been used. Views ``0 .. epochs - 1`` are the crops an online run of the same recipe
sees, so with m = 1 and n >= epochs the cached run differs from the online one only in the
compression of the teacher's output.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from mmengine.registry import DATASETS, FUNCTIONS
from torch.utils.data import Dataset

from ssld_zoo.data.images import (
    ImageDataset,
    TrainViewTransform,
    collate_images,
    sample_seed,
    seeded,
)
from ssld_zoo.distill.cache.format import (
    CacheMismatchError,
    ImageChangedError,
    TeacherCache,
    images_digest,
)
from ssld_zoo.distill.cache.identity import read_identified

__all__ = ["CachedViewDataset", "collate_cached", "view_index", "check_image"]

# Stored boxes are float32 fractions of the image size: a replay that differs by more than this
# cut another crop (torchvision drew differently, or the image file changed).
_BOX_TOL = 1e-5


def check_image(root, path: str, rec: np.void, identity: tuple[int, int] | None) -> None:
    """Refuse an image whose size or fingerprint differs from the record the cache holds
    (:class:`ImageChangedError` naming the file); None (unreadable file) passes."""
    if identity is None:
        return
    size, print_ = int(rec["file_bytes"]), int(rec["fingerprint"])
    if identity != (size, print_):
        what = (
            f"{identity[0]} bytes, the cache recorded {size}"
            if identity[0] != size
            else "same size, other content"
        )
        raise ImageChangedError(
            f"{path}: changed since the teacher cache {root} was built ({what}): its stored "
            f"teacher outputs belong to the old image; restore the file, or relabel the "
            f"changed images with `ssld-zoo label RECIPE --verify --repair`"
        )


def view_index(seed: int, row: int, slot: int, views: int) -> int:
    """The stored view that training slot ``slot`` of cache row ``row`` uses."""
    cycle, offset = divmod(slot, views)
    if cycle == 0:
        return offset
    rng = np.random.default_rng(sample_seed(seed, cycle, row, stream=4))
    return int(rng.permutation(views)[offset])


@DATASETS.register_module()
class CachedViewDataset(Dataset):
    """A recipe's images with their cached views: ``dataset[(epoch, i)]`` is a list of
    ``crops_per_image`` samples ``(image, label, i, teacher ids, teacher log-probs)``, or None for
    an image that cannot be read (or that the build could not read).

    Args:
        images: the recipe's images (its :class:`ImageDataset` or that dataset's config).
        cache: the opened cache, or its folder; every image of ``images`` must be in it.
        transform: the train transform the cache was built with (default: ``images``').
        crops_per_image: views cut from one decode (m).
        views: use the first ``views`` stored views (default: all).
    """

    def __init__(
        self,
        images: ImageDataset | dict,
        cache: TeacherCache | str,
        transform: TrainViewTransform | None = None,
        crops_per_image: int = 1,
        views: int | None = None,
    ):
        images = DATASETS.build(images) if isinstance(images, dict) else images
        cache = TeacherCache(cache) if not isinstance(cache, TeacherCache) else cache
        transform = images.transform if transform is None else transform
        spec = cache.spec
        self.views = spec.views if views is None else int(views)
        if not 1 <= self.views <= spec.views:
            raise CacheMismatchError(
                f"{cache.root}: teacher_cache.views={views}, but the cache "
                f"stores {spec.views} views per image"
            )
        if not 1 <= crops_per_image <= self.views:
            raise ValueError(
                f"teacher_cache.crops_per_image={crops_per_image}: expected 1 to "
                f"the {self.views} views used"
            )
        if transform.settings != spec.transform:
            diff = [
                f"{k}: {spec.transform.get(k)!r} in the cache, {v!r} in the recipe"
                for k, v in transform.settings.items()
                if spec.transform.get(k) != v
            ]
            raise CacheMismatchError(
                f"{cache.root}: built with another train transform (" + "; ".join(diff) + ")"
            )
        rows: Sequence[int]
        missing: list[str] = []
        if images_digest(images.samples) == spec.images_sha256:
            rows = range(len(images))  # the cache's own image list: no path lookup, no dict
        else:
            rows = []
            for path, _ in images.samples:
                r = cache.index_of(path)
                (missing if r is None else rows).append(path if r is None else r)
        if missing:
            raise CacheMismatchError(
                f"{cache.root}: {len(missing)} of the recipe's {len(images)} images are not in "
                f"the cache (first: {missing[0]}); build a cache over this recipe's images "
                f"with `ssld-zoo label`"
            )
        self.images, self.cache, self.transform = images, cache, transform
        self.rows = rows
        self.crops_per_image = int(crops_per_image)
        self.seed = spec.seed
        self.classes, self.num_labeled = images.classes, images.num_labeled

    def __len__(self) -> int:
        return len(self.images)

    @property
    def metainfo(self) -> dict:
        return self.images.metainfo

    def __getitem__(self, key: int | tuple[int, int]) -> list[tuple] | None:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        path, label = self.images.samples[index]
        row = self.rows[index]
        rec = self.cache.record(row)
        if not rec["ok"]:
            return None  # unreadable when the cache was built: no teacher output for it
        img, identity = read_identified(path, self.images.samples.location(index))
        check_image(self.cache.root, path, rec, identity)
        if img is None:
            return None
        out = []
        for j in range(self.crops_per_image):
            v = view_index(self.seed, row, epoch * self.crops_per_image + j, self.views)
            with seeded(int(rec["seed"][v])):
                x, box, flip = self.transform.view(img)
            if not np.allclose(box, rec["box"][v], atol=_BOX_TOL, rtol=0) or flip != bool(
                rec["flip"][v]
            ):
                raise CacheMismatchError(
                    f"{self.cache.root}: view {v} of {path} replays to box {np.round(box, 6)} "
                    f"flip {flip}, but the cache recorded box {np.round(rec['box'][v], 6)} flip "
                    f"{bool(rec['flip'][v])}: the image file or torchvision's sampling changed "
                    f"since the build (torch {self.cache.manifest.get('torch_version')}); "
                    f"rebuild the cache"
                )
            out.append(
                (
                    x,
                    label,
                    index,
                    torch.from_numpy(rec["ids"][v].astype(np.int64)),
                    torch.from_numpy(rec["logp"][v].astype(np.float32)),
                )
            )
        return out


@FUNCTIONS.register_module()
def collate_cached(batch: Sequence[Any]) -> dict[str, Any]:
    """:func:`~ssld_zoo.data.images.collate_images` over the views of a batch of images, plus the
    teacher's cached ``teacher_ids`` and ``teacher_logp`` (N, K) log-probabilities."""
    views = [v for item in batch if item is not None for v in item]
    out = collate_images([v[:3] for v in views])
    out["skipped"] = sum(1 for item in batch if item is None)
    if views:
        out["teacher_ids"] = torch.stack([v[3] for v in views])
        out["teacher_logp"] = torch.stack([v[4] for v in views])
    return out
