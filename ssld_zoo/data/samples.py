"""A compact, read-only-once-built table of ``(path, label)`` samples.

A Python list of ``(path, label)`` tuples costs about 170-200 bytes a sample (the tuple, the
string object, the list slot): 2.7 GB at ImageNet-22k's 14M images, in every DataLoader worker
that touches it (reference counts defeat copy-on-write). :class:`SampleTable` keeps each path as
a folder prefix id (folders are shared by many images) and the rest of the name in one bytes
buffer, with labels in an int32 array: 40-70 bytes a sample, and no per-sample Python
objects, so forked workers share its pages. ``benchmarks/data_scale.py`` measures it.
"""

from __future__ import annotations

from array import array
from typing import Iterable, Iterator, Sequence

import numpy as np

__all__ = ["SampleTable"]


def _spread(starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """``[starts[0], ..., starts[0] + lens[0] - 1, starts[1], ...]``: the positions of runs."""
    total = int(lens.sum())
    if not total:
        return np.zeros(0, dtype=np.int64)
    run_start = np.cumsum(lens) - lens
    return np.repeat(starts - run_start, lens) + np.arange(total)


def _cut(path: str) -> int:
    """Where a path's folder prefix ends: after the last separator, or after the ``#`` of a
    tar member (its shard is the prefix)."""
    return max(path.rfind("/"), path.rfind("#"), path.rfind("\\")) + 1


class SampleTable(Sequence):
    """``table[i] -> (path, label)``, built by :meth:`append` / :meth:`extend` /
    :meth:`extend_shard`; slicing gives a list of tuples."""

    def __init__(self, samples: Iterable[tuple[str, int]] = ()):
        self._prefixes: list[str] = []
        self._prefix_ids: dict[str, int] = {}
        self._names = bytearray()
        self._ends = array("q")
        self._prefix = array("i")
        self._labels = array("i")
        # (data offset, size) of tar members, so a reader needs no per-shard lookup; created
        # with the first shard (size -1: a plain file)
        self._offsets: array | None = None
        self._sizes: array | None = None
        self.extend(samples)

    def _prefix_id(self, prefix: str) -> int:
        pid = self._prefix_ids.get(prefix)
        if pid is None:
            pid = self._prefix_ids[prefix] = len(self._prefixes)
            self._prefixes.append(prefix)
        return pid

    def append(self, path: str, label: int) -> None:
        cut = _cut(path)
        self._prefix.append(self._prefix_id(path[:cut]))
        self._names += path[cut:].encode("utf-8", "surrogateescape")
        self._ends.append(len(self._names))
        self._labels.append(label)
        if self._offsets is not None:
            self._offsets.append(0)
            self._sizes.append(-1)

    def extend(self, samples: Iterable[tuple[str, int]]) -> None:
        # the per-sample work of append, inlined: this loop is the start-up cost of a big list
        ids, names, ends, prefix, labels = (
            self._prefix_ids,
            self._names,
            self._ends,
            self._prefix,
            self._labels,
        )
        for path, label in samples:
            cut = max(path.rfind("/"), path.rfind("#"), path.rfind("\\")) + 1
            head = path[:cut]
            pid = ids.get(head)
            if pid is None:
                pid = self._prefix_id(head)
            prefix.append(pid)
            names += path[cut:].encode("utf-8", "surrogateescape")
            ends.append(len(names))
            labels.append(label)
        self._pad_locations()

    def _pad_locations(self) -> None:
        if self._offsets is not None and len(self._offsets) < len(self):
            missing = len(self) - len(self._offsets)
            self._offsets.frombytes(bytes(8 * missing))
            self._sizes.frombytes(np.full(missing, -1, np.int64).tobytes())

    def extend_shard(
        self,
        tar: str,
        names: bytes,
        ends: np.ndarray,
        labels: np.ndarray,
        offsets: np.ndarray,
        sizes: np.ndarray,
    ) -> None:
        """Add a tar shard's members at once (``<tar>#<name>``, their data offsets and sizes;
        see :mod:`.shards`)."""
        if self._offsets is None:
            self._offsets, self._sizes = array("q"), array("q")
        self._pad_locations()
        self._offsets.frombytes(np.asarray(offsets, dtype=np.int64).tobytes())
        self._sizes.frombytes(np.asarray(sizes, dtype=np.int64).tobytes())
        base = len(self._names)
        self._names += names
        self._ends.frombytes((np.asarray(ends, dtype=np.int64) + base).tobytes())
        pid = self._prefix_id(tar + "#")
        self._prefix.frombytes(np.full(len(ends), pid, dtype=np.int32).tobytes())
        self._labels.frombytes(np.asarray(labels, dtype=np.int32).tobytes())

    def extend_buffer(
        self, prefixes: Sequence[str], which: np.ndarray, names: bytes, ends: np.ndarray
    ) -> None:
        """Add many samples at once, label -1: row i is ``prefixes[which[i]]`` + its name,
        the names concatenated in ``names`` (``ends[i]`` closes name i)."""
        pids = np.array([self._prefix_id(p) for p in prefixes], dtype=np.int32)
        self._pad_locations()
        base = len(self._names)
        self._names += names
        self._ends.frombytes((np.asarray(ends, dtype=np.int64) + base).tobytes())
        self._prefix.frombytes(pids[np.asarray(which)].tobytes())
        self._labels.frombytes(np.full(len(ends), -1, np.int32).tobytes())
        self._pad_locations()

    def truncate(self, n: int) -> None:
        """Keep the first ``n`` samples (a reader that started over)."""
        del self._names[self._ends[n - 1] if n else 0 :]
        for a in (self._ends, self._prefix, self._labels, self._offsets, self._sizes):
            if a is not None:
                del a[n:]

    def __len__(self) -> int:
        return len(self._ends)

    def path(self, i: int) -> str:
        start = self._ends[i - 1] if i else 0
        name = self._names[start : self._ends[i]].decode("utf-8", "surrogateescape")
        return self._prefixes[self._prefix[i]] + name

    def location(self, i: int) -> tuple[int, int] | None:
        """``(data offset, size)`` of sample ``i`` in its tar shard; None for a plain file."""
        if self._offsets is None or self._sizes[i] < 0:
            return None
        return self._offsets[i], self._sizes[i]

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"sample {i} of {len(self)}")
        return self.path(i), self._labels[i]

    def __iter__(self) -> Iterator[tuple[str, int]]:
        names, ends, prefixes, prefix, labels = (
            self._names,
            self._ends,
            self._prefixes,
            self._prefix,
            self._labels,
        )
        start = 0
        for i in range(len(ends)):
            end = ends[i]
            yield (
                prefixes[prefix[i]] + names[start:end].decode("utf-8", "surrogateescape"),
                labels[i],
            )
            start = end

    def path_lines(self, rows: int = 1 << 16) -> Iterator[bytes]:
        """The paths as bytes (``os.fsencode``), each followed by a newline, ``rows`` paths a
        block: what the teacher cache hashes to recognise its image list, built with numpy
        (per-path Python costs 2-3 us, 40 s at 14M)."""
        if not len(self):
            return
        ends = np.frombuffer(self._ends, dtype=np.int64)
        prefix = np.frombuffer(self._prefix, dtype=np.int32)
        names = np.frombuffer(self._names, dtype=np.uint8)
        encoded = [p.encode("utf-8", "surrogateescape") for p in self._prefixes]
        plens = np.array([len(p) for p in encoded], dtype=np.int64)
        pstarts = np.cumsum(plens) - plens
        pbytes = np.frombuffer(b"".join(encoded) or b"\0", dtype=np.uint8)
        for a in range(0, len(ends), rows):
            b = min(len(ends), a + rows)
            first = int(ends[a - 1]) if a else 0
            starts = np.concatenate([[first], ends[a : b - 1]])
            lens = ends[a:b] - starts
            plen = plens[prefix[a:b]]
            width = plen + lens + 1
            offs = np.cumsum(width) - width  # where each line starts in the block
            out = np.empty(int(width.sum()), dtype=np.uint8)
            out[_spread(offs + plen, lens)] = names[first : int(ends[b - 1])]
            out[_spread(offs, plen)] = pbytes[_spread(pstarts[prefix[a:b]], plen)]
            out[offs + width - 1] = 10
            yield out.tobytes()

    @property
    def labels(self) -> np.ndarray:
        """The labels, an int32 array (a copy: a view would pin the buffer's size)."""
        return (
            np.frombuffer(self._labels, dtype=np.int32).copy()
            if len(self)
            else np.zeros(0, np.int32)
        )

    def select(self, rows: Sequence[int]) -> "SampleTable":
        """A new table of the given rows, in that order."""
        out = SampleTable()
        for r in rows:
            where = self.location(int(r))
            path, label = self[int(r)]
            if where is None:
                out.append(path, label)
            else:  # a tar member: its location travels with it
                tar, _, name = path.rpartition("#")
                out.extend_shard(
                    tar,
                    name.encode("utf-8", "surrogateescape"),
                    np.array([len(name.encode("utf-8", "surrogateescape"))]),
                    np.array([label]),
                    np.array([where[0]]),
                    np.array([where[1]]),
                )
        return out

    @property
    def nbytes(self) -> int:
        """Bytes held by the table's buffers (the prefixes' strings counted too)."""
        return (
            len(self._names)
            + sum(
                a.itemsize * len(a)
                for a in (self._ends, self._prefix, self._labels, self._offsets, self._sizes)
                if a is not None
            )
            + sum(len(p) + 49 for p in self._prefixes)
        )
