"""Near-duplicates of a set of images (e.g. a val set) in a pool, by perceptual hash.

SSLD removed the ImageNet-22k images that near-duplicate ImageNet-1k val images before mining
(PaddleClas docs/zh_CN/training/advanced/ssld.md). A copy may be resized, re-encoded, mirrored
or slightly cropped. Each image gets a 256-bit DCT hash: the grey image at 64x64, its 16x16
lowest 2-D DCT frequencies, one bit per coefficient (above the median or not); two images are
near-duplicates when their hashes differ in at most ``max_distance`` bits (Hamming distance).
Resizing and re-encoding barely move the low frequencies; a mirror or a crop moves them all,
so each excluded image is hashed as seen in :data:`VIEWS` (itself and 36 crops of 80-95 %,
each also mirrored) and a pool image (hashed once) matches when it is close to any view. The
hash is grey and coarse: photos of a small object on a plain sky or backdrop can hash alike,
so each match is confirmed by colour (:func:`colour_difference`).

The method and :data:`MAX_DISTANCE` were chosen by ``python benchmarks/near_duplicates.py``
(planted copies of Imagenette val photos against other photos of the same classes; the table
and the costs are in docs/distillation.md). The search is brute force, ``pool x excluded x 74``
comparisons as float32 matrix products (on the mining device), about 10^8 a second on one
CPU core: an ImageNet val set (50,000 images, 3.7M views) against a 1.28M-image pool is
4.7 * 10^12 comparisons, about 13-15 core-hours.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

import numpy as np

from ssld_zoo.data.walk import walk_images

if TYPE_CHECKING:
    import torch

log = logging.getLogger("ssld_zoo.data")

__all__ = [
    "MAX_DISTANCE",
    "VIEWS",
    "NearDuplicate",
    "ExcludeIndex",
    "image_hash",
    "view_hashes",
    "MAX_COLOUR_DIFFERENCE",
    "colour_difference",
    "exclude_images",
    "build_exclude_index",
    "find_near_duplicates",
]

HASH_SIDE = 64  # the grey thumbnail the DCT is taken of
LOW = 16  # LOW x LOW lowest frequencies: 256 bits
MAX_DISTANCE = 67  # of 256 bits; set by benchmarks/near_duplicates.py (docs/distillation.md)
COLOUR_SIDE = 16
MAX_COLOUR_DIFFERENCE = 20.0  # of 255; the same benchmark

# (scale, x position, y position) of each crop of an excluded image: the whole image and
# 80-95 % crops at the centre, the corners and the edge midpoints (0 = left/top, 1 = right/bottom)
VIEWS: tuple[tuple[float, float, float], ...] = ((1.0, 0.5, 0.5),) + tuple(
    (s, fx, fy) for s in (0.95, 0.9, 0.85, 0.8) for fx in (0.0, 0.5, 1.0) for fy in (0.0, 0.5, 1.0)
)
# decode JPEGs at a reduced scale, keeping enough pixels for the smallest crop's thumbnail
_DECODE_SIDE = 2 * HASH_SIDE


def _dct_rows(n: int, k: int) -> np.ndarray:
    """The first ``k`` rows of the (unscaled) DCT-II matrix of size ``n``: the hash only
    compares coefficients with each other, so the scale does not matter."""
    x = np.arange(n)
    return np.cos(np.pi * (2 * x + 1) * np.arange(k)[:, None] / (2 * n))


_DCT = _dct_rows(HASH_SIDE, LOW)


def image_hash(img) -> np.ndarray:
    """The 256-bit hash of a PIL image as 32 bytes (``np.uint8``)."""
    from PIL import Image

    grey = img.convert("L").resize((HASH_SIDE, HASH_SIDE), Image.Resampling.BILINEAR)
    coeffs = (_DCT @ np.asarray(grey, dtype=np.float64) @ _DCT.T).ravel()
    return np.packbits(coeffs > np.median(coeffs))


def _view_images(img, views: Sequence[tuple[float, float, float]]) -> list:
    """Each view (crop) of ``img``, then each view of its mirror."""
    from PIL import ImageOps

    width, height = img.size
    out = []
    for im in (img, ImageOps.mirror(img)):
        for scale, fx, fy in views:
            w, h = width * scale, height * scale
            left, top = (width - w) * fx, (height - h) * fy
            out.append(im if scale == 1.0 else im.crop((left, top, left + w, top + h)))
    return out


def view_hashes(img, views: Sequence[tuple[float, float, float]] = VIEWS) -> np.ndarray:
    """``(2 * len(views), 32)`` hashes: each view (crop) of ``img``, then each of its mirror."""
    return np.stack([image_hash(v) for v in _view_images(img.convert("L"), views)])


def _colour_thumbnail(img) -> np.ndarray:
    from PIL import Image

    side = (COLOUR_SIDE, COLOUR_SIDE)
    return np.asarray(img.convert("RGB").resize(side, Image.Resampling.BILINEAR), np.float32)


def colour_difference(img, excluded) -> float:
    """How far ``img`` is in colour from the nearest view of ``excluded``: the mean absolute
    difference of their 16x16 RGB thumbnails (0-255). A copy keeps its colours; the hash is
    grey, and two photos of a small object on a plain sky or backdrop can hash alike."""
    thumbs = np.stack([_colour_thumbnail(v) for v in _view_images(excluded, VIEWS)])
    return float(np.abs(thumbs - _colour_thumbnail(img)).mean(axis=(1, 2, 3)).min())


@dataclass(frozen=True)
class NearDuplicate:
    """A pool image, the excluded image it near-duplicates, their hash distance (bits) and
    their :func:`colour_difference`."""

    path: str
    duplicate_of: str
    distance: int
    colour_difference: float


def _signs(packed: np.ndarray, device) -> "torch.Tensor":
    """Packed hash bits as rows of +1/-1 (float32): the dot product of two rows is
    ``bits - 2 * distance``, so a matrix product gives every distance of a block at once."""
    import torch

    bits = torch.from_numpy(np.unpackbits(np.ascontiguousarray(packed, np.uint8), axis=1))
    return bits.to(device=device, dtype=torch.float32).mul_(2).sub_(1)


class ExcludeIndex:
    """The view hashes of the excluded images, searched by brute force as matrix products
    (float32 +1/-1 rows: exact for integer dot products this small; TF32 too, as +1 and -1
    are exact in it), ``block`` views at a time, on ``device``."""

    def __init__(
        self,
        paths: Sequence[str],
        hashes: np.ndarray,
        owners: np.ndarray,
        device: str | torch.device | None = None,
        block: int = 1 << 16,
    ):
        self.paths = list(paths)
        self.hashes = np.ascontiguousarray(hashes, np.uint8)  # (views, bytes), packed
        self.owners = np.asarray(owners, dtype=np.int64)
        self.device, self.block = device or "cpu", block

    def nearest(self, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each row of ``hashes`` (``(n, bytes)`` uint8): the index of the closest excluded
        image (-1 when there is none) and the distance in bits to it (its nearest view)."""
        import torch

        bits = self.hashes.shape[1] * 8
        queries = _signs(hashes, self.device)
        best = torch.full((len(queries),), -bits - 1.0, device=self.device)  # highest dot
        where = torch.full((len(queries),), -1, dtype=torch.long, device=self.device)
        for start in range(0, len(self.hashes), self.block):
            views = _signs(self.hashes[start : start + self.block], self.device)
            dot, j = (queries @ views.T).max(1)
            closer = dot > best
            best = torch.where(closer, dot, best)
            where = torch.where(closer, j + start, where)
        where, best = where.cpu().numpy(), best.cpu().numpy()
        owner = np.where(where >= 0, self.owners[np.maximum(where, 0)], -1)
        distance = np.rint((bits - best) / 2).astype(np.int32)
        return owner, distance


def _read(path: str):
    """An image as the hashes see it (JPEGs decoded at a reduced scale)."""
    from ssld_zoo.preprocess import decode_image

    return decode_image(path, reduce_to=_DECODE_SIDE)


class _Hashes:
    """Dataset of file hashes: ``(index, hashes or None)`` (None: unreadable, logged)."""

    def __init__(self, paths: Sequence[str], views: Sequence[tuple[float, float, float]] | None):
        self.paths, self.views = list(paths), views

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        try:
            img = _read(self.paths[i])
        except Exception as e:  # an unreadable file is skipped, as in training and mining
            log.warning("near-duplicates: skipping unreadable image: %s", e)
            return i, None
        if self.views is None:
            return i, image_hash(img)[None]
        return i, view_hashes(img, self.views)


def _hash_batches(
    paths: Sequence[str],
    views: Sequence[tuple[float, float, float]] | None,
    num_workers: int,
) -> Iterator[list[tuple[int, np.ndarray | None]]]:
    """Batches of ``(index, hashes or None)`` of the files (None: unreadable), decoded by
    ``num_workers`` processes, in order."""
    from torch.utils.data import DataLoader

    yield from DataLoader(
        _Hashes(paths, views), batch_size=64, num_workers=num_workers, collate_fn=_as_list
    )


def _as_list(batch: list) -> list:
    return batch


def exclude_images(folders: Sequence[str | os.PathLike]) -> list[str]:
    """The images under each folder; a missing or empty folder is an error naming it."""
    paths: list[str] = []
    for folder in folders:
        if not Path(folder).is_dir():
            raise FileNotFoundError(
                f"exclude folder {folder} does not exist or is not a folder (expected a "
                f"folder of images to remove near-duplicates of, e.g. a val set)"
            )
        found = walk_images(folder, "exclude folder")
        if not found:
            raise FileNotFoundError(f"exclude folder {folder} holds no images")
        paths += found
    return list(dict.fromkeys(paths))


def build_exclude_index(
    paths: Sequence[str], num_workers: int = 2, device: str | torch.device | None = None
) -> ExcludeIndex:
    """The :data:`VIEWS` hashes of each readable image in ``paths``, searched on ``device``."""
    kept = [
        (paths[i], h)
        for batch in _hash_batches(paths, VIEWS, num_workers)
        for i, h in batch
        if h is not None
    ]
    if not kept:
        return ExcludeIndex([], np.zeros((0, LOW * LOW // 8), np.uint8), np.zeros(0), device)
    owners = np.concatenate([np.full(len(h), k) for k, (_, h) in enumerate(kept)])
    hashes = np.concatenate([h for _, h in kept])
    return ExcludeIndex([p for p, _ in kept], hashes, owners, device)


def find_near_duplicates(
    pool: Sequence[str],
    exclude: Sequence[str | os.PathLike],
    max_distance: int = MAX_DISTANCE,
    num_workers: int = 2,
    progress: Callable[[int, int], None] | None = None,
    device: str | torch.device | None = None,
    max_colour_difference: float = MAX_COLOUR_DIFFERENCE,
) -> list[NearDuplicate]:
    """The images of ``pool`` that near-duplicate an image under the ``exclude`` folders, in
    pool order, each with the closest excluded image: within ``max_distance`` bits of one of
    its views and within ``max_colour_difference`` of it in colour. Unreadable pool images are
    not matched (mining reports them). ``device``: where hashes are compared (default CPU)."""
    index = build_exclude_index(exclude_images(exclude), num_workers, device)
    found: list[NearDuplicate] = []
    pending: list[tuple[int, np.ndarray]] = []
    done = 0

    def search() -> None:
        # thousands of queries per product: each block of views is unpacked once per search
        owner, dist = index.nearest(np.concatenate([h for _, h in pending]))
        for (i, _), o, d in zip(pending, owner, dist):
            if d <= max_distance:  # a candidate: confirmed by its colours (few, so re-read)
                colours = colour_difference(_read(pool[i]), _read(index.paths[o]))
                if colours <= max_colour_difference:
                    found.append(NearDuplicate(pool[i], index.paths[o], int(d), colours))
        pending.clear()

    for batch in _hash_batches(pool, None, num_workers):
        pending += [(i, h) for i, h in batch if h is not None]
        done += len(batch)
        if len(pending) >= 4096 and index.paths:
            search()
        if progress:
            progress(done, len(pool))
    if pending and index.paths:
        search()
    return found
