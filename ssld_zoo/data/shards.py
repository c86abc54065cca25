"""WebDataset-style tar shards as image sources, read by random access through a member index.

A shard source is a tar file (``shard-000000.tar``), a brace pattern of them
(``train-{000000..000099}.tar``, also ``{a,b}`` lists) or a folder whose top level holds
``.tar`` files (and no sub-folders or images). Inside a shard, members sharing a key (the
name up to the first dot of its base name, as WebDataset groups them) form one sample:
``key.jpg`` (any image extension) and, for a labeled source, ``key.cls`` holding the class
index as text.

Each sample is named ``<tar path>#<image member>`` (e.g. ``/d/train-000003.tar#n01440764_9.jpg``):
a stable identity, so the teacher cache keys and fingerprints it as it does a file, and a
mined list or ``images.tsv`` can name it. :func:`read_bytes` reads any such name (or a plain
file) by one positioned read, from the shard's member index.

Why an index and not a stream: the training data is map-style (``dataset[(epoch, i)]``), because
each sample's crop is seeded by ``(seed, epoch, i)`` and the teacher cache replays those crops;
the sampler (:class:`~ssld_zoo.data.images.EpochIndexSampler`) splits the samples over DDP
ranks and the DataLoader its batches over workers, exactly as for a folder. A shard's index
(names, data offsets, sizes, labels: about 50 bytes a sample) is built once by walking the
tar headers and kept beside it as ``<tar>.idx.npz`` (or under ``$SSLD_ZOO_HOME/tar-index``
when the folder is read-only), keyed by the tar's size and mtime, so a later start-up reads
arrays instead of headers.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
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
        raise ValueError(
            f"shard pattern {pattern!r}: expected {{N..M}} or {{a,b,...}}, got {{{body}}}"
        )
    return [p for item in items for p in expand_braces(head + item + tail)]


def is_shard_source(source: str | os.PathLike) -> bool:
    """Whether ``source`` names tar shards (a ``.tar``, a brace pattern, or a folder whose
    top level holds ``.tar`` files and neither sub-folders nor images: an ImageFolder root
    with an archive lying beside its class folders stays an ImageFolder root) rather than an
    image folder or a list file."""
    s = os.fspath(source)
    if s.endswith(".tar") or _BRACE.search(s):
        return True
    if not os.path.isdir(s):
        return False
    tars = False
    with os.scandir(s) as it:
        for e in it:
            if e.name.startswith("."):
                continue
            if e.name.endswith(".tar") and e.is_file():
                tars = True
            elif e.is_dir() or is_image(e.name):
                return False
    return tars


def shard_files(source: str | os.PathLike) -> list[str]:
    """The tar files of a shard source, in order; a missing one is a ShardError naming it."""
    s = os.fspath(source)
    if os.path.isdir(s):
        files = sorted(
            os.path.join(s, n)
            for n in os.listdir(s)
            if n.endswith(".tar") and not n.startswith(".")
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
        return len(self.names) + sum(
            a.nbytes for a in (self.ends, self.offsets, self.sizes, self.labels)
        )


def _key_ext(name: str) -> tuple[str, str]:
    """WebDataset's split: the key is everything up to the first dot of the base name."""
    folder, _, base = name.rpartition("/")
    stem, dot, ext = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), ext.lower() if dot else ""


def _octal(field: bytes) -> int:
    if field[:1] and field[0] & 0x80:  # GNU base-256, for members over 8 GiB
        return int.from_bytes(field[1:], "big")
    text = field.split(b"\0", 1)[0].strip()
    return int(text, 8) if text else 0


def _pax(data: bytes) -> dict[str, str]:
    """The ``key=value`` records of a pax extended header (``"<len> key=value\n"`` each)."""
    out, at = {}, 0
    while at < len(data):
        length = int(data[at : data.index(b" ", at)])
        key, _, value = data[data.index(b" ", at) + 1 : at + length - 1].partition(b"=")
        out[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        at += length
    return out


def _members(tar: str, view) -> "list[tuple[str, int, int]]":
    """``(name, data offset, size)`` of each regular file in a tar held in ``view`` (bytes or
    an mmap): its 512-byte headers read directly (ustar, GNU long names, pax), about ten
    times faster than ``tarfile``'s objects. Damage is a ShardError naming the tar."""
    out, at, end = [], 0, len(view)
    long_name: str | None = None
    pax: dict[str, str] = {}
    while True:
        if at + 512 > end:
            raise ShardError(
                f"tar shard {tar}: ends at byte {end} inside a header or without the "
                f"end-of-archive blocks (truncated shard: rewrite it)"
            )
        h = view[at : at + 512]
        if h == _ZERO_BLOCK:
            return out
        try:
            if _octal(h[148:156]) != sum(h[:148]) + 256 + sum(h[156:]):
                raise ValueError("header checksum mismatch")
            size = _octal(h[124:136])
        except ValueError as e:
            raise ShardError(
                f"tar shard {tar}: not a readable tar file (bad header at byte {at}: {e})"
            ) from None
        flag, data = h[156:157], at + 512
        if flag in _REGULAR and "size" in pax:
            size = int(pax["size"])
        if data + size > end:
            raise ShardError(
                f"tar shard {tar}: the member at byte {at} runs past the end of the file "
                f"(truncated shard: rewrite it)"
            )
        if flag == b"L":
            long_name = (
                bytes(view[data : data + size])
                .split(b"\0", 1)[0]
                .decode("utf-8", "surrogateescape")
            )
        elif flag == b"x":
            pax = _pax(bytes(view[data : data + size]))
        elif flag in _REGULAR:
            name = long_name or pax.get("path")
            if name is None:
                name = h[:100].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
                if h[257:263] == b"ustar\0" and h[345]:
                    prefix = h[345:500].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
                    name = f"{prefix}/{name}"
            out.append((name, data, size))
            long_name, pax = None, {}
        elif flag != b"g":
            long_name, pax = None, {}
        at = data + (size + 511) // 512 * 512


_ZERO_BLOCK = bytes(512)
_REGULAR = (b"0", b"\0", b"7")  # regular files (7: contiguous, read as regular)


def _scan_tar(tar: str) -> ShardIndex:
    """Walk the tar headers once: each key's image member and its ``.cls`` label."""
    import mmap

    images: dict[str, tuple[str, int, int]] = {}
    labels: dict[str, int] = {}
    try:
        with open(tar, "rb") as f:
            if os.fstat(f.fileno()).st_size == 0:
                raise ShardError(f"tar shard {tar}: is empty (expected a tar file)")
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as view:
                for name, offset, size in _members(tar, view):
                    key, ext = _key_ext(name)
                    if ext == "cls":
                        text = view[offset : offset + size].decode("utf-8", "replace").strip()
                        try:
                            labels[key] = int(text)
                        except ValueError:
                            raise ShardError(
                                f"tar shard {tar}: {name} holds {text[:40]!r}, expected a "
                                f"class index (an integer)"
                            ) from None
                    elif key not in images and is_image(name):
                        images[key] = (name, offset, size)
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
    return [
        Path(tar + ".idx.npz"),
        cache_dir() / "tar-index" / f"{digest}-{Path(tar).name}.idx.npz",
    ]


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
    mtime, else built by walking the headers (and saved). Not kept in memory: the caller
    (a :class:`~ssld_zoo.data.samples.SampleTable`) copies what it needs."""
    tar = os.fspath(tar)
    try:
        st = os.stat(tar)
    except OSError as e:
        raise ShardError(f"tar shard {tar}: cannot be read ({e.strerror or e})") from None
    return _load_or_build(tar, st.st_size, st.st_mtime_ns)


def _load_or_build(tar: str, size: int, mtime_ns: int) -> ShardIndex:
    stamp = np.array([size, mtime_ns], dtype=np.int64)
    for f in _index_files(tar):
        if f.is_file():
            idx = _load_index(f, tar, stamp)
            if idx is not None:
                return idx
    idx = _scan_tar(tar)
    _save_index(idx, stamp)
    return idx


@lru_cache(maxsize=64)  # readers in shard order (a build, mining) reuse one table per shard
def _member_table(tar: str, size: int, mtime_ns: int) -> dict[str, tuple[int, int]]:
    idx = _load_or_build(tar, size, mtime_ns)
    return {idx.name(i): (int(idx.offsets[i]), int(idx.sizes[i])) for i in range(len(idx))}


def split_member(path: str) -> tuple[str, str] | None:
    """``(tar, member)`` of a sample name ``<tar>#<member>``, or None for a plain file path."""
    cut = path.find(_TAR_MEMBER)
    if cut < 0:
        return None
    return path[: cut + 4], path[cut + 5 :]


def read_bytes(path: str, where: tuple[int, int] | None = None) -> bytes:
    """The bytes of an image: a plain file, or a tar member named ``<tar>#<member>`` (one
    positioned read). ``where``: the member's ``(data offset, size)`` when the caller's index
    knows them (:meth:`~ssld_zoo.data.samples.SampleTable.location`), else they are looked
    up in the shard's index. A missing shard or member is an OSError naming it."""
    parts = split_member(path)
    if parts is None or (where is None and os.path.isfile(path)):
        with open(path, "rb") as f:
            return f.read()
    tar, member = parts
    if where is None:
        try:
            st = os.stat(tar)
        except OSError as e:
            raise FileNotFoundError(
                e.errno, f"tar shard {tar} cannot be read ({e.strerror})"
            ) from None
        try:
            where = _member_table(tar, st.st_size, st.st_mtime_ns)[member]
        except KeyError:
            raise FileNotFoundError(f"tar shard {tar} holds no image member {member!r}") from None
    offset, size = where
    with open(tar, "rb") as f:
        f.seek(offset)
        data = f.read(size)
    if len(data) != size:
        raise OSError(
            f"tar shard {tar}: member {member} is cut short ({len(data)} of {size} bytes)"
        )
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
