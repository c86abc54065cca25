"""The cache: where each file lives, quarantine, listing and clearing.

Layout under :func:`~ssld_zoo.weights.settings.cache_dir` (``$SSLD_ZOO_HOME``, default
``~/.cache/ssld_zoo``)::

    downloads/<file>                complete downloads that validated; <file> is the URL's
                                    basename, or for a Google Drive URL its ``#fragment``
    downloads/<file>.part           an interrupted download, resumed with an HTTP Range request
    downloads/<file>.part.json      which URL (and server version) the ``.part`` holds
    downloads/.gdown/               gdown's own partial files (Google Drive downloads)
    converted/<weight>.safetensors  converted tensors of a registered weight
    quarantine/<time>-<file>        cache files that failed their check, kept for inspection
    sha256.json                     hashes of validated downloads (see :mod:`.trust`)

A file enters ``downloads/`` or ``converted/`` only by an atomic rename after it validated.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from ssld_zoo.weights import trust
from ssld_zoo.weights.settings import cache_dir
from ssld_zoo.weights.urls import file_name_for

__all__ = [
    "cache_dir",
    "downloads_dir",
    "cached_path",
    "converted_path",
    "quarantine_dir",
    "quarantine",
    "CacheEntry",
    "cache_entries",
    "find_entries",
    "clear_cache",
    "forget_hashes",
    "weights_by_file",
]


def downloads_dir() -> Path:
    """``<cache>/downloads``."""
    return cache_dir() / "downloads"


def cached_path(url: str) -> Path:
    """The exact path where the file of ``url`` is (or will be) cached."""
    return downloads_dir() / file_name_for(url)


def converted_path(card) -> Path:
    """Where the converted (safetensors) tensors of a registered weight are cached."""
    return cache_dir() / "converted" / f"{card.name}.safetensors"


def quarantine_dir() -> Path:
    """``<cache>/quarantine``."""
    return cache_dir() / "quarantine"


def quarantine(path: Path) -> Path:
    """Move a cache file that failed its check out of the way (and its ``.part.json``, for a
    partial download); returns where it went. A file already gone is not an error."""
    dest = quarantine_dir() / f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{path.name}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(path, dest)
    except FileNotFoundError:  # another process moved it first
        pass
    if path.name.endswith(".part"):
        path.with_name(path.name + ".json").unlink(missing_ok=True)
    return dest


@dataclass(frozen=True)
class CacheEntry:
    """One file (or one recorded hash) in the cache."""

    path: Path
    kind: str  # "download" | "converted" | "partial" | "quarantined" | "hash"
    size: int  # bytes (0 for a hash without its file)
    weights: tuple[str, ...]  # registered weight names the file belongs to (may be empty)
    sha256: str | None = None  # recorded hash (downloads and hashes only)

    @property
    def name(self) -> str:
        return self.path.name


def weights_by_file() -> dict[str, tuple[str, ...]]:
    """Download file name -> the registered weight names whose cards list it."""
    from ssld_zoo.registry import list_weights

    out: dict[str, list[str]] = {}
    for card in list_weights():
        for url in card.urls:
            try:
                out.setdefault(file_name_for(url), []).append(card.name)
            except ValueError:
                continue
    return {k: tuple(dict.fromkeys(v)) for k, v in out.items()}


def _converted_weights(path: Path) -> tuple[str, ...]:
    """The weight name a converted file was written for (its metadata, else its stem)."""
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            name = (f.metadata() or {}).get("weights")
    except Exception:  # a damaged file is still listed (and can be cleared)
        name = None
    return (name or path.stem,)


def _files(folder: Path) -> list[Path]:
    return (
        sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
        if folder.is_dir()
        else []
    )


def cache_entries() -> list[CacheEntry]:
    """Everything in the cache: downloads, converted files, partial downloads, quarantined
    files, and hashes recorded for downloads no longer there."""
    root = cache_dir()
    by_file = weights_by_file()
    records = trust.read_records()
    entries: list[CacheEntry] = []
    for p in _files(root / "downloads"):
        if p.name.endswith(".part.json"):
            continue
        if p.name.endswith(".part"):
            base = p.name[: -len(".part")]
            entries.append(CacheEntry(p, "partial", p.stat().st_size, by_file.get(base, ())))
        else:
            rec = records.get(p.name) or {}
            entries.append(
                CacheEntry(
                    p, "download", p.stat().st_size, by_file.get(p.name, ()), rec.get("sha256")
                )
            )
    for p in _files(root / "downloads" / ".gdown"):
        # gdown names its partial files <name><8 random chars>.part.
        base = p.name[: -len(".part") - 8] if p.name.endswith(".part") else p.name
        entries.append(CacheEntry(p, "partial", p.stat().st_size, by_file.get(base, ())))
    for p in _files(root / "converted"):
        if p.suffix == ".safetensors":
            entries.append(CacheEntry(p, "converted", p.stat().st_size, _converted_weights(p)))
    for p in _files(quarantine_dir()):
        entries.append(CacheEntry(p, "quarantined", p.stat().st_size, ()))
    present = {e.name for e in entries if e.kind == "download"}
    for name, rec in sorted(records.items()):
        if name not in present:
            entries.append(
                CacheEntry(
                    root / "downloads" / name, "hash", 0, by_file.get(name, ()), rec["sha256"]
                )
            )
    return entries


def _matches(entry: CacheEntry, pattern: str) -> bool:
    pat = pattern.lower()
    return any(
        fnmatch.fnmatch(c.lower(), pat) for c in (entry.name, entry.path.stem, *entry.weights)
    )


def find_entries(pattern: str | None = None) -> list[CacheEntry]:
    """The cache entries whose file name, or a weight name they belong to, matches the
    shell-style ``pattern`` (case-insensitive); all entries when ``pattern`` is None."""
    entries = cache_entries()
    return entries if pattern is None else [e for e in entries if _matches(e, pattern)]


def clear_cache(pattern: str | None = None, keep_hashes: bool = False) -> list[CacheEntry]:
    """Delete cached files, and the hashes recorded for them, and return what was deleted.

    Args:
        pattern: shell-style pattern matched (case-insensitively) against file names and the
            weight names they belong to (``'resnet50_vd*'``, ``'*.pdparams'``); None clears
            everything, quarantine included.
        keep_hashes: keep the recorded sha256 of the deleted downloads, so that a
            re-download must be the very same file. By default they go too: a cleared entry
            is as if it had never been downloaded.
    """
    removed = find_entries(pattern)
    for e in removed:
        if e.kind == "hash":
            continue
        e.path.unlink(missing_ok=True)
        if e.kind == "partial":
            e.path.with_name(e.name + ".json").unlink(missing_ok=True)
    if pattern is None:
        shutil.rmtree(quarantine_dir(), ignore_errors=True)
    if keep_hashes:
        return [e for e in removed if e.kind != "hash"]
    names = {e.name for e in removed if e.kind in ("download", "hash")}
    trust.forget(None if pattern is None else names.__contains__)
    return removed


def forget_hashes(pattern: str) -> list[str]:
    """Forget the recorded sha256 of the downloads matching ``pattern`` (file or weight
    name), whether or not the file is still cached; returns their file names. The next
    download of such a file is then trusted afresh once it validates."""
    by_file = weights_by_file()
    pat = pattern.lower()
    return trust.forget(
        lambda name: any(
            fnmatch.fnmatch(c.lower(), pat) for c in (name, Path(name).stem, *by_file.get(name, ()))
        )
    )
