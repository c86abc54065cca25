"""Recorded sha256 of downloads that had no published one (trust on first *validated* use).

``sha256.json`` in the cache maps a download's file name to the sha256 it had when it was
first fetched, and the architecture it was checked against. A hash is recorded only after the
file parsed, converted and fitted that architecture (keys, shapes, dtypes, finite values), so
an error page or a short body never becomes the trusted version of a file. Later uses and
re-downloads of that file name must match it.

Entries written before that check existed (format 1, no ``"arch"``) are not trusted and are
dropped at the next write. A records file that cannot be read is moved to quarantine, with a
warning, and the records start afresh.
"""

from __future__ import annotations

import json
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from ssld_zoo.weights.errors import CacheRepairWarning
from ssld_zoo.weights.fileops import atomic_write, locked
from ssld_zoo.weights.settings import cache_dir

__all__ = ["records_path", "read_records", "recorded_sha256", "record", "forget"]

FORMAT = 2


def records_path() -> Path:
    """``<cache>/sha256.json``."""
    return cache_dir() / "sha256.json"


def _valid(rec: Any) -> bool:
    return (
        isinstance(rec, dict)
        and isinstance(rec.get("sha256"), str)
        and len(rec["sha256"]) == 64
        and isinstance(rec.get("arch"), str)
    )


def read_records() -> dict[str, dict[str, Any]]:
    """Every trusted record: file name -> {sha256, url, size, arch, recorded}."""
    path = records_path()
    if not path.is_file():
        return {}
    try:
        files = json.loads(path.read_text())["files"]
        if not isinstance(files, dict):
            raise TypeError("'files' is not an object")
    except (OSError, ValueError, KeyError, TypeError) as e:
        from ssld_zoo.weights.cache import quarantine

        where = quarantine(path)
        warnings.warn(
            f"{path}: unreadable checksum records ({type(e).__name__}: {e}); moved "
            f"to {where}; files will be checked afresh",
            CacheRepairWarning,
            stacklevel=2,
        )
        return {}
    return {k: v for k, v in files.items() if isinstance(k, str) and _valid(v)}


def recorded_sha256(name: str) -> str | None:
    """The sha256 recorded for download ``name`` when it first validated, if any."""
    rec = read_records().get(name)
    return rec["sha256"] if rec else None


def _update(change: Callable[[dict[str, dict[str, Any]]], None]) -> None:
    path = records_path()
    with locked(path):
        files = read_records()
        change(files)
        text = json.dumps({"format": FORMAT, "files": files}, indent=1, sort_keys=True)
        atomic_write(path, lambda tmp: tmp.write_text(text + "\n"))


def record(name: str, sha256: str, url: str, size: int, arch: str) -> None:
    """Record the hash of download ``name``, which has just validated against ``arch``."""
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    entry = {"sha256": sha256, "url": url, "size": size, "arch": arch, "recorded": now}
    current = read_records().get(name)
    if current is None or current["sha256"] != sha256:
        _update(lambda files: files.__setitem__(name, entry))


def forget(match: Callable[[str], bool] | None = None) -> list[str]:
    """Drop the records of the file names ``match`` accepts (all when None); returns them."""
    if not records_path().is_file():
        return []
    gone: list[str] = []

    def drop(files: dict[str, dict[str, Any]]) -> None:
        for name in list(files):
            if match is None or match(name):
                gone.append(name)
                del files[name]

    _update(drop)
    return gone
