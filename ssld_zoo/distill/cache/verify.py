"""Check a whole teacher cache on demand (``ssld-zoo label RECIPE --verify``) and mark what is
wrong for rebuilding (``--repair``).

Two checks: every file's sha256 against the manifest (damaged shards, image and score lists),
and every cached image's size and fingerprint against its file (images replaced or edited
since the build). Repair removes the damaged shards and the shards holding changed images,
with their done-markers, and marks the manifest incomplete: the next ``ssld-zoo label`` with
the same settings rebuilds exactly those shards (the others are reused).
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ssld_zoo.distill.cache.format import MANIFEST, SCORES, TeacherCache, shard_name
from ssld_zoo.distill.cache.identity import fingerprint

__all__ = ["CacheReport", "verify_cache", "mark_for_rebuild"]


@dataclass
class CacheReport:
    """What :func:`verify_cache` found: one line per problem, and the shards to rebuild."""

    root: Path
    damaged: list[str] = field(default_factory=list)  # files whose sha256 differs
    changed: list[str] = field(default_factory=list)  # images whose content differs
    missing: list[str] = field(default_factory=list)  # cached images no longer readable
    shards: set[int] = field(default_factory=set)  # shards to rebuild
    lists_damaged: bool = False  # images.tsv or scores.tsv
    images_checked: int = 0

    @property
    def ok(self) -> bool:
        return not (self.damaged or self.changed or self.missing)


def _identity(path: str) -> tuple[int, int] | None:
    from ssld_zoo.data.shards import read_bytes

    try:
        data = read_bytes(path)  # a file, or a tar shard's member (<tar>#<member>)
    except OSError:
        return None
    return len(data), fingerprint(data)


def verify_cache(
    root: str | os.PathLike, images: bool = True, threads: int | None = None
) -> CacheReport:
    """Check every file's sha256 and (``images``) every cached image against its record."""
    cache = TeacherCache(root, verify=False)
    report = CacheReport(cache.root)
    names = {shard_name(i): i for i in range(cache.spec.num_shards)}
    for line in cache.damaged_files(threads):
        report.damaged.append(line)
        name = Path(line.split(": sha256", 1)[0]).name
        if name in names:
            report.shards.add(names[name])
        else:
            report.lists_damaged = True
    if not images or report.lists_damaged:
        return report  # a damaged image list cannot say which file each record belongs to
    threads = threads or max(1, min(16, 2 * (os.cpu_count() or 1)))  # file reads: I/O bound
    rows = []
    for shard in sorted(set(names.values()) - report.shards):
        start, count = cache.spec.shard_rows(shard)
        rows += [r for r in range(start, start + count) if cache.record(r)["ok"]]
    paths = cache.paths
    with ThreadPoolExecutor(threads) as pool:
        found = pool.map(lambda r: _identity(paths[r]), rows)
        for row, identity in zip(rows, found):
            report.images_checked += 1
            rec = cache.record(row)
            want = (int(rec["file_bytes"]), int(rec["fingerprint"]))
            if identity is None:
                report.missing.append(f"{paths[row]}: cannot be read (cached as image {row})")
            elif identity != want:
                report.changed.append(
                    f"{paths[row]}: changed since the build ({identity[0]} "
                    f"bytes, the cache recorded {want[0]})"
                    if identity[0] != want[0]
                    else f"{paths[row]}: changed since the build (same size, other content)"
                )
                report.shards.add(row // cache.spec.shard_size)
    return report


def mark_for_rebuild(report: CacheReport) -> list[int]:
    """Remove the shards :func:`verify_cache` found wrong (and their markers) and mark the
    manifest incomplete, so that ``ssld-zoo label`` with the same settings rebuilds them.
    A damaged image or score list is rewritten by that build. Returns the shards removed."""
    root = report.root
    for s in sorted(report.shards):
        (root / shard_name(s)).unlink(missing_ok=True)
        (root / (shard_name(s)[:-4] + ".json")).unlink(missing_ok=True)
    if report.lists_damaged:
        (root / SCORES).unlink(missing_ok=True)
    from ssld_zoo.weights.fileops import atomic_write

    m = json.loads((root / MANIFEST).read_text())
    m["complete"] = False
    for key in ("shards", "files", "bytes", "bytes_per_view"):
        m.pop(key, None)
    text = json.dumps(m, indent=2) + "\n"
    atomic_write(root / MANIFEST, lambda tmp: Path(tmp).write_text(text))
    return sorted(report.shards)
