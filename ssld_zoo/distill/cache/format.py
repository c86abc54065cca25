"""The on-disk format of a teacher cache, and the checks that a cache fits a recipe.

A cache is a folder::

    manifest.json      settings (teacher and its weights hash, transform, views, top-k, kind,
                       image list hash, format version) and, once complete, the shard list
                       with each shard's sha256, and the sha256 of images.tsv and scores.tsv
    images.tsv         path<TAB>label of every image, in cache order
    shard_00000.npy    one record per image (numpy structured array, memory-mappable)
    shard_00000.json   written after its shard: rows, bytes and sha256 (a shard without it is
                       redone by a resumed build)
    scores.tsv         path<TAB>class<TAB>confidence per image, as ``ssld-zoo mine`` writes them

Integrity: opening a cache checks every file's size and sha256 against the manifest (the
shards hashed in parallel; see docs/reliability.md for the cost at ImageNet scale), so a
flipped byte is refused naming the file; ``verify=False`` skips the hashes for a caller that
has just checked them. Each record also holds its image's size and a 64-bit fingerprint of
its bytes (:mod:`.identity`): a replaced image is refused when it is read for training.

A record holds, for each of the ``views`` augmented views of its image: the seed that replays
the view exactly (the recipe's train transform run under that seed), the crop box normalised to
the image size and the flip (checked on replay), and the teacher's output in a compact form:
``ids`` (int16, or int32 beyond 32,767 classes), ``topk`` entries, and ``logp``, ``topk + 1``
float16 log-probabilities: the kept classes', then the log of the mass of all the others
(computed by the build, as a sum of the dropped probabilities, never as ``1 - sum``).
Format 2 stored float16 probabilities: they hold nothing below 6e-8, so a confident teacher's
tail was stored as 0 (which SSLD's symmetric KL reads as ``log 1e-12``), and ``1 - sum`` of
float16 top-k is off by up to 1e-3, so the classes left out often got no mass at all
(docs/distillation.md, "Why the cache lost accuracy").

* ``kind="topk"`` (default): the ``topk`` most probable classes and their probabilities; the
  rest of the mass is spread evenly over the other classes when the target is rebuilt (FKD's
  "marginal smoothing"). Works with every loss, SSLD's symmetric KL included.
* ``kind="sampled"``: ``topk`` classes drawn from the teacher's distribution with replacement,
  stored as distinct ids with their frequencies (Sparse Logit Sampling, arXiv 2503.16870):
  an unbiased estimate of the teacher's distribution, but zero on the classes not drawn, so
  only losses linear in the teacher's probabilities may use it (see ``losses.linear_in_teacher``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

__all__ = [
    "teacher_diff",
    "FORMAT_VERSION",
    "KINDS",
    "CacheError",
    "CacheMismatchError",
    "ImageChangedError",
    "CacheSpec",
    "record_dtype",
    "images_digest",
    "shard_name",
    "read_manifest",
    "TeacherCache",
    "dense_probs",
    "log_probs",
    "dense_log_probs",
]

FORMAT_VERSION = 3  # 2: image sizes and fingerprints, file hashes checked; 3: log-probabilities
KINDS = ("topk", "sampled")
MANIFEST = "manifest.json"
IMAGES = "images.tsv"
SCORES = "scores.tsv"
# A rebuilt target's log-probability for a class of zero mass: finite, so that 0 * log 0 terms
# of the losses stay 0 instead of NaN, and far below any real log-probability.
LOG_ZERO = -1e4


class CacheError(RuntimeError):
    """A teacher cache is missing, incomplete or damaged; the message names the file."""


class CacheMismatchError(CacheError):
    """A teacher cache was built for other settings than the recipe's; the message names them."""


class ImageChangedError(CacheMismatchError):
    """An image's content differs from the one the cache was built on; the message names it."""


@dataclass(frozen=True)
class CacheSpec:
    """Everything a cache's content depends on (what ``manifest.json`` records up front)."""

    teacher: dict[str, Any]  # recipe's teacher section + weights_sha256
    transform: dict[str, Any]  # TrainViewTransform.settings
    seed: int
    views: int
    topk: int
    kind: str
    num_classes: int
    num_images: int
    images_sha256: str
    shard_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def to_json(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "CacheSpec":
        fields = {k: d[k] for k in cls.__dataclass_fields__}
        fields["mean"], fields["std"] = tuple(fields["mean"]), tuple(fields["std"])
        return cls(**fields)

    @property
    def num_shards(self) -> int:
        return (self.num_images + self.shard_size - 1) // self.shard_size

    def shard_rows(self, shard: int) -> tuple[int, int]:
        """``(first image, number of images)`` of a shard."""
        start = shard * self.shard_size
        return start, min(self.shard_size, self.num_images - start)


def record_dtype(views: int, topk: int, num_classes: int) -> np.dtype:
    """The numpy record of one image (little-endian, fixed size)."""
    ids = "<i2" if num_classes <= np.iinfo(np.int16).max else "<i4"
    return np.dtype(
        [
            ("ok", "u1"),
            ("seed", "<u8", (views,)),
            ("box", "<f4", (views, 4)),
            ("flip", "u1", (views,)),
            ("ids", ids, (views, topk)),
            # the kept classes' log-probabilities, then that of all the others together
            ("logp", "<f2", (views, topk + 1)),
            # the teacher's mean prediction over the views: the mining score
            ("pred", "<i4"),
            ("conf", "<f4"),
            # the image file's identity (size, fingerprint), checked on read
            ("file_bytes", "<u8"),
            ("fingerprint", "<u8"),
        ]
    )


def images_digest(samples: Sequence[tuple[str, int]]) -> str:
    """sha256 of the image list (paths in order; labels are the recipe's business)."""
    h = hashlib.sha256()
    if hasattr(samples, "path_lines"):  # a SampleTable: the same bytes, built with numpy
        for block in samples.path_lines():
            h.update(block)
        return h.hexdigest()
    for path, _ in samples:
        h.update(os.fsencode(path) + b"\n")
    return h.hexdigest()


def shard_name(i: int) -> str:
    return f"shard_{i:05d}.npy"


def read_manifest(root: str | os.PathLike) -> dict[str, Any]:
    """The manifest of the cache at ``root`` (CacheError naming the file when it is unusable)."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise CacheError(
            f"{path}: no teacher cache here (build one with `ssld-zoo label RECIPE --out {root}`)"
        )
    try:
        m = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CacheError(f"{path}: not a readable teacher-cache manifest ({e})") from e
    version = m.get("format_version") if isinstance(m, dict) else None
    if version != FORMAT_VERSION:
        raise CacheError(
            f"{path}: format_version {version!r}, this ssld-zoo reads version "
            f"{FORMAT_VERSION}: rebuild the cache"
        )
    return m


def _sha256(path: Path) -> str:
    try:
        from ssld_zoo.weights.fileops import sha256_of

        return sha256_of(path)
    except OSError as e:
        raise CacheError(f"{path}: cannot be read ({e.strerror or e})") from e


def _shard_bytes(dtype: np.dtype, rows: int) -> int:
    """Size of a shard file as ``np.save`` writes it (header + rows)."""
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf,
        {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": (rows,)},
    )
    return buf.tell() + dtype.itemsize * rows


class TeacherCache:
    """A complete teacher cache opened for reading (shards memory-mapped on first use).

    ``TeacherCache(root)`` checks that the manifest is complete and that every shard is present
    with its recorded size and (``verify``) sha256; a missing, truncated or damaged shard is
    an error naming it, never skipped.
    """

    def __init__(self, root: str | os.PathLike, verify: bool = True):
        self.root = Path(root)
        m = read_manifest(self.root)
        if not m.get("complete"):
            raise CacheError(
                f"{self.root / MANIFEST}: the build of this cache has not finished "
                f"(run `ssld-zoo label` again with the same settings to resume it)"
            )
        self.spec = CacheSpec.from_json(m["spec"])
        self.manifest = m
        self.dtype = record_dtype(self.spec.views, self.spec.topk, self.spec.num_classes)
        for i in range(self.spec.num_shards):
            f = self.root / shard_name(i)
            want = _shard_bytes(self.dtype, self.spec.shard_rows(i)[1])
            if not f.is_file():
                raise CacheError(f"{f}: shard {i} of {self.spec.num_shards} is missing")
            if f.stat().st_size != want:
                raise CacheError(
                    f"{f}: shard {i} holds {f.stat().st_size} bytes, expected "
                    f"{want}: it is truncated or damaged (rebuild it: delete it and "
                    f"its .json, then run `ssld-zoo label` again)"
                )
        if verify:
            damaged = self.damaged_files()
            if damaged:
                raise CacheError(
                    damaged[0]
                    + (f" (and {len(damaged) - 1} more damaged files)" if len(damaged) > 1 else "")
                )
        self._shards: dict[int, np.ndarray] = {}
        self._paths: list[str] | None = None
        self._index: dict[str, int] | None = None

    def damaged_files(self, threads: int | None = None) -> list[str]:
        """One line per file whose sha256 differs from the manifest's (shards, images.tsv,
        scores.tsv), hashed on ``threads`` threads (default: up to 8, one per CPU)."""
        want = {x["file"]: x["sha256"] for x in self.manifest.get("shards", [])}
        want.update(self.manifest.get("files", {}))
        threads = threads or max(1, min(8, os.cpu_count() or 1))
        with ThreadPoolExecutor(threads) as pool:  # hashlib releases the GIL on large reads
            got = dict(zip(want, pool.map(lambda f: _sha256(self.root / f), want)))
        return [
            f"{self.root / f}: sha256 {got[f][:12]}..., the manifest recorded "
            f"{want[f][:12]}...: the file is damaged (a bad disk or copy); repair the cache "
            f"with `ssld-zoo label RECIPE --verify --repair`"
            for f in sorted(want)
            if got[f] != want[f]
        ]

    @property
    def paths(self) -> list[str]:
        """The cached image paths, in cache order."""
        if self._paths is None:
            lines = (
                (self.root / IMAGES)
                .read_text(encoding="utf-8", errors="surrogateescape")
                .splitlines()
            )
            self._paths = [line.split("\t")[0] for line in lines]
            if len(self._paths) != self.spec.num_images:
                raise CacheError(
                    f"{self.root / IMAGES}: {len(self._paths)} images listed, the "
                    f"manifest says {self.spec.num_images}"
                )
        return self._paths

    def index_of(self, path: str) -> int | None:
        """The cache row of an image path (None when the image is not cached)."""
        if self._index is None:
            self._index = {p: i for i, p in enumerate(self.paths)}
        return self._index.get(path)

    def record(self, row: int) -> np.void:
        """The record of cache row ``row`` (a numpy structured scalar)."""
        shard, offset = divmod(row, self.spec.shard_size)
        arr = self._shards.get(shard)
        if arr is None:
            f = self.root / shard_name(shard)
            try:
                arr = np.load(f, mmap_mode="r")
            except (OSError, ValueError) as e:
                raise CacheError(f"{f}: cannot be read as shard {shard} ({e})") from e
            if arr.dtype != self.dtype:
                raise CacheError(f"{f}: records of dtype {arr.dtype}, expected {self.dtype}")
            self._shards[shard] = arr
        return arr[offset]

    def scores(self) -> dict[str, tuple[int, float]]:
        """``{path: (class, confidence)}``: the teacher's mean prediction over the cached views
        of each image (class -1 for an image the build could not read)."""
        from ssld_zoo.distill.mining import read_scores

        return read_scores(self.root / SCORES)

    def __getstate__(self) -> dict:
        # Data-loader workers re-open the memory maps themselves.
        state = dict(self.__dict__)
        state["_shards"] = {}
        return state


def teacher_diff(cached: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """What differs between the teacher a cache recorded and the one a recipe names. The
    weights' content hash decides: the same weights under another path (a moved work folder,
    an absolute path instead of a relative one) are the same teacher."""
    same_weights = cached.get("weights_sha256") == now.get("weights_sha256")
    where = ("weights", "pretrained")  # how the weights were found, not what they are
    return [
        f"teacher.{k}: {cached.get(k)!r} in the cache, {v!r} in the recipe"
        for k, v in now.items()
        if cached.get(k) != v and not (same_weights and k in where)
    ]


def dense_log_probs(
    ids: torch.Tensor, logp: torch.Tensor, num_classes: int, kind: str = "topk"
) -> torch.Tensor:
    """Rebuild ``(N, num_classes)`` float32 teacher log-probabilities (the losses take them as
    teacher logits: ``softmax(log p) = p``) from cached ``(N, K)`` ids and ``(N, K + 1)``
    log-probabilities (the last: the other classes' mass); a class of zero mass gets
    :data:`LOG_ZERO`. ``topk``: the other classes share their stored mass evenly.
    ``sampled``: the stored frequencies renormalised to sum 1 (zero elsewhere)."""
    if kind not in KINDS:
        raise ValueError(f"cache kind {kind!r}: expected one of {KINDS}")
    ids = ids.long()
    n, k = ids.shape
    if logp.shape != (n, k + 1):
        raise ValueError(
            f"cached log-probabilities of shape {tuple(logp.shape)}: expected {(n, k + 1)} "
            f"(the {k} kept classes, then the rest)"
        )
    # in log space throughout: float32 then loses nothing of the float16 values
    lp = logp.float().clamp_max(0)
    lp = torch.where(torch.isfinite(lp), lp, torch.full_like(lp, LOG_ZERO)).clamp_min(LOG_ZERO)
    kept, rest = lp[:, :k], lp[:, k:]
    if kind == "sampled":
        # scatter_add: unused slots hold id 0 with frequency 0 and must not overwrite class 0
        dense = torch.zeros(n, num_classes, device=lp.device)
        dense.scatter_add_(1, ids, kept.exp())  # exp(LOG_ZERO) = 0
        return log_probs(dense / dense.sum(-1, keepdim=True).clamp_min(1e-12))
    share = rest - math.log(max(num_classes - k, 1))  # each other class's even share
    share = torch.where(rest > LOG_ZERO, share, rest).clamp_min(LOG_ZERO)
    return share.expand(n, num_classes).clone().scatter_(1, ids, kept)


def dense_probs(
    ids: torch.Tensor, logp: torch.Tensor, num_classes: int, kind: str = "topk"
) -> torch.Tensor:
    """The probabilities of :func:`dense_log_probs` (float32; 0 where the mass is 0)."""
    lp = dense_log_probs(ids, logp, num_classes, kind)
    return torch.where(lp > LOG_ZERO, lp.exp(), torch.zeros_like(lp))


def log_probs(p: torch.Tensor) -> torch.Tensor:
    """``log p`` with :data:`LOG_ZERO` where p is 0. The losses take it as teacher logits:
    ``softmax(log p) = p``, and at temperature T, ``softmax(log p / T)`` is the teacher's own
    softmax at T wherever p is exact."""
    return torch.where(p > 0, p.clamp_min(1e-30).log(), torch.full_like(p, LOG_ZERO))
