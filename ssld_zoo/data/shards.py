"""WebDataset-style tar shards as image sources, read by random access through a member index.

A shard source is a tar file (``shard-000000.tar``), a brace pattern of them
(``train-{000000..000099}.tar``, also ``{a,b}`` lists) or a folder whose top level holds
``.tar`` files. Inside a shard, members sharing a key (the name up to the first dot of its
base name, as WebDataset groups them) form one sample: ``key.jpg`` (any image extension) and,
for a labeled source, ``key.cls`` holding the class index as text.

Each sample is named ``<tar path>#<image member>`` (e.g. ``/d/train-000003.tar#n01440764_9.jpg``):
a stable identity, so the teacher cache keys and fingerprints it as it does a file, and a
mined list or ``images.tsv`` can name it. :func:`read_bytes` reads any such name (or a plain
file) by one positioned read, from the shard's member index.

Why an index and not a stream: the training data is map-style (``dataset[(epoch, i)]``), because
each sample's crop is seeded by ``(seed, epoch, i)`` and the teacher cache replays those crops;
the sampler (:class:`~ssld_zoo.data.images.EpochIndexSampler`) splits the samples over DDP
ranks and the DataLoader its batches over workers, exactly as for a folder. A shard's index
(names, data offsets, sizes, labels: about 40 bytes a sample) is built once by walking the
tar headers and kept beside it as ``<tar>.idx.npz`` (or under ``$SSLD_ZOO_HOME/tar-index``
when the folder is read-only), keyed by the tar's size and mtime, so a later start-up reads
arrays instead of headers.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tarfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ssld_zoo.data.walk import is_image

__all__ = [
    "MEMBER_SEP",
    "ShardError",
    "ShardIndex",
    "expand_braces",
    "shard_files",
    "is_shard_source",
    "shard_index",
    "split_member",
    "read_bytes",
    "read_class_names",
]

log = logging.getLogger("ssld_zoo.data")

MEMBER_SEP = "#"
_TAR_MEMBER = ".tar" + MEMBER_SEP
_INDEX_VERSION = 1
_BRACE = re.compile(r"\{([^{}]*)\}")


class ShardError(ValueError):
    """A tar shard is missing, unreadable or damaged; the message names the file."""


def expand_braces(pattern: str) -> list[str]:
    """``a-{000..002}.tar`` -> ``a-000.tar a-001.tar a-002.tar`` (zero padding kept as written);
    ``{x,y}`` lists too; several braces expand left to right."""
    m = _BRACE.search(pattern)
    if m is None:
        return [pattern]
    body, head, tail = m.group(1), pattern[: m.start()], pattern[m.end() :]
    rng = re.fullmatch(r"(\d+)\.\.(\d+)", body)
    if rng:
        lo, hi = int(rng.group(1)), int(rng.group(2))
        if hi < lo:
            raise ValueError(f"shard pattern {pattern!r}: range {{{body}}} runs backwards")
        width = len(rng.group(1))
        items = [f"{i:0{width}d}" for i in range(lo, hi + 1)]
    elif "," in body:
        items = body.split(",")
    else:
        raise ValueError(f"shard pattern {pattern!r}: expected {{N..M}} or {{a,b,...}}, got {{{body}}}")
    return [p for item in items for p in expand_braces(head + item + tail)]


def is_shard_source(source: str | os.PathLike) -> bool:
    """Whether ``source`` names tar shards (a ``.tar``, a brace pattern, or a folder whose
    top level holds ``.tar`` files) rather than an image folder or a list file."""
    s = os.fspath(source)
    if s.endswith(".tar") or _BRACE.search(s):
        return True
    if os.path.isdir(s):
        with os.scandir(s) as it:
            return any(e.name.endswith(".tar") and not e.name.startswith(".") for e in it)
    return False


def shard_files(source: str | os.PathLike) -> list[str]:
    """The tar files of a shard source, in order; a missing one is a ShardError naming it."""
    s = os.fspath(source)
    if os.path.isdir(s):
        files = sorted(
            os.path.join(s, n) for n in os.listdir(s) if n.endswith(".tar") and not n.startswith(".")
        )
    else:
        files = expand_braces(s)
    for f in files:
        if not os.path.isfile(f):
            raise ShardError(f"tar shard {f} does not exist (from the shard source {s})")
    return files


@dataclass(frozen=True)
class ShardIndex:
    """The samples of one tar shard: image member names (one UTF-8 buffer, ``ends[i]`` closes
    name i), data offsets and sizes in the tar, and labels (``.cls``; -1 without one)."""

    tar: str
    names: bytes
    ends: np.ndarray  # int64
    offsets: np.ndarray  # int64, where the member's data starts
    sizes: np.ndarray  # int64
    labels: np.ndarray  # int32

    def __len__(self) -> int:
        return len(self.ends)

    def name(self, i: int) -> str:
        start = int(self.ends[i - 1]) if i else 0
        return self.names[start : int(self.ends[i])].decode("utf-8", "surrogateescape")

    def member_names(self) -> list[str]:
        return [self.name(i) for i in range(len(self))]

    @property
    def nbytes(self) -> int:
        return len(self.names) + sum(a.nbytes for a in (self.ends, self.offsets, self.sizes, self.labels))


def _key_ext(name: str) -> tuple[str, str]:
    """WebDataset's split: the key is everything up to the first dot of the base name."""
    folder, _, base = name.rpartition("/")
    stem, dot, ext = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), ext.lower() if dot else ""


def _scan_tar(tar: str) -> ShardIndex:
    """Walk the tar headers once: each key's image member and its ``.cls`` label."""
    images: dict[str, tuple[str, int, int]] = {}
    labels: dict[str, int] = {}
    size = os.path.getsize(tar)
    try:
        with tarfile.open(tar, mode="r:") as tf:
            for m in tf:
                if not m.isfile():
                    continue
                if m.offset_data + m.size > size:
                    raise ShardError(
                        f"tar shard {tar}: member {m.name} runs past the end of the file "
                        f"(truncated shard: rewrite it)"
                    )
                key, ext = _key_ext(m.name)
                if ext == "cls":
                    text = tf.extractfile(m).read().decode("utf-8", "replace").strip()
                    try:
                        labels[key] = int(text)
                    except ValueError:
                        raise ShardError(
                            f"tar shard {tar}: {m.name} holds {text[:40]!r}, expected a class "
                            f"index (an integer)"
                        ) from None
                elif is_image(m.name) and key not in images:
                    images[key] = (m.name, m.offset_data, m.size)
            # tarfile ends quietly at a header cut short: a whole tar ends with zero blocks
            tf.fileobj.seek(tf.offset)
            if tf.fileobj.read(512) != bytes(512):
                raise ShardError(
                    f"tar shard {tar}: ends at byte {tf.offset} without the end-of-archive "
                    f"blocks (truncated shard: rewrite it)"
                )
    except tarfile.TarError as e:
        raise ShardError(f"tar shard {tar}: not a readable tar file ({e})") from None
    except OSError as e:
        raise ShardError(f"tar shard {tar}: cannot be read ({e.strerror or e})") from None
    encoded = [v[0].encode("utf-8", "surrogateescape") for v in images.values()]
    return ShardIndex(
        tar,
        b"".join(encoded),
        np.cumsum([len(b) for b in encoded], dtype=np.int64),
        np.array([v[1] for v in images.values()], dtype=np.int64),
        np.array([v[2] for v in images.values()], dtype=np.int64),
        np.array([labels.get(k, -1) for k in images], dtype=np.int32),
    )


def _index_files(tar: str) -> list[Path]:
    """Where a shard's index is kept: beside it, else under the user cache."""
    from ssld_zoo.weights.settings import cache_dir

    real = os.path.realpath(tar)
    digest = hashlib.sha256(os.fsencode(real)).hexdigest()[:16]
    return [Path(tar + ".idx.npz"), cache_dir() / "tar-index" / f"{digest}-{Path(tar).name}.idx.npz"]


def _load_index(f: Path, tar: str, stamp: np.ndarray) -> ShardIndex | None:
    try:
        with np.load(f, allow_pickle=False) as z:
            if int(z["version"]) != _INDEX_VERSION or not np.array_equal(z["stamp"], stamp):
                return None  # an index of another version of the tar: rebuilt
            return ShardIndex(
                tar, z["names"].tobytes(), z["ends"], z["offsets"], z["sizes"], z["labels"]
            )
    except (OSError, ValueError, KeyError):
        return None


def _save_index(idx: ShardIndex, stamp: np.ndarray) -> None:
    from ssld_zoo.weights.fileops import atomic_write

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:  # a file object: np.savez would add ".npz" to the name
            np.savez(
                fh,
                version=np.int64(_INDEX_VERSION),
                stamp=stamp,
                names=np.frombuffer(idx.names, dtype=np.uint8),
                ends=idx.ends,
                offsets=idx.offsets,
                sizes=idx.sizes,
                labels=idx.labels,
            )

    for f in _index_files(idx.tar):
        try:
            atomic_write(f, write)
            return
        except OSError:  # a read-only data folder: the user cache instead
            continue
    log.warning("tar shard %s: could not save its member index (rebuilt on each start)", idx.tar)


def shard_index(tar: str | os.PathLike) -> ShardIndex:
    """The member index of one tar shard: its saved index when it matches the tar's size and
    mtime, else built by walking the headers (and saved)."""
    tar = os.fspath(tar)
    try:
        st = os.stat(tar)
    except OSError as e:
        raise ShardError(f"tar shard {tar}: cannot be read ({e.strerror or e})") from None
    return _cached_index(tar, st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=256)
def _cached_index(tar: str, size: int, mtime_ns: int) -> ShardIndex:
    stamp = np.array([size, mtime_ns], dtype=np.int64)
    for f in _index_files(tar):
        if f.is_file():
            idx = _load_index(f, tar, stamp)
            if idx is not None:
                return idx
    idx = _scan_tar(tar)
    _save_index(idx, stamp)
    return idx


@lru_cache(maxsize=64)
def _member_table(tar: str, size: int, mtime_ns: int) -> dict[str, tuple[int, int]]:
    idx = _cached_index(tar, size, mtime_ns)
    return {idx.name(i): (int(idx.offsets[i]), int(idx.sizes[i])) for i in range(len(idx))}


def split_member(path: str) -> tuple[str, str] | None:
    """``(tar, member)`` of a sample name ``<tar>#<member>``, or None for a plain file path."""
    cut = path.find(_TAR_MEMBER)
    if cut < 0:
        return None
    return path[: cut + 4], path[cut + 5 :]


def read_bytes(path: str) -> bytes:
    """The bytes of an image: a plain file, or a tar member named ``<tar>#<member>`` (one
    positioned read). A missing shard or member is an OSError naming it."""
    parts = split_member(path)
    if parts is None or os.path.isfile(path):
        with open(path, "rb") as f:
            return f.read()
    tar, member = parts
    try:
        st = os.stat(tar)
    except OSError as e:
        raise FileNotFoundError(e.errno, f"tar shard {tar} cannot be read ({e.strerror})") from None
    try:
        offset, size = _member_table(tar, st.st_size, st.st_mtime_ns)[member]
    except KeyError:
        raise FileNotFoundError(f"tar shard {tar} holds no image member {member!r}") from None
    with open(tar, "rb") as f:
        f.seek(offset)
        data = f.read(size)
    if len(data) != size:
        raise OSError(f"tar shard {tar}: member {member} is cut short ({len(data)} of {size} bytes)")
    return data


def read_class_names(source: str | os.PathLike) -> list[str] | None:
    """The class names of a labeled shard source: ``classes.txt`` (one name per line, line i
    is ``.cls`` value i) in the shards' folder, or None when there is none."""
    files = shard_files(source)
    folder = os.fspath(source) if os.path.isdir(source) else os.path.dirname(files[0])
    f = Path(folder) / "classes.txt"
    if not f.is_file():
        return None
    return [line.strip() for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
