"""Where the cache is, where downloads come from, and how long they may take.

Everything is read from environment variables at each use, so a process (or a test) can change
them at any time:

* ``SSLD_ZOO_HOME``: the cache folder (default ``~/.cache/ssld_zoo``);
* ``SSLD_ZOO_OFFLINE``: ``1`` forbids network access (the cache, or a mirror folder, only);
* ``SSLD_ZOO_MIRROR``: fetch every file by its name from this http(s) base URL or local folder
  instead of its own URL (firewalls, clusters without internet);
* ``SSLD_ZOO_DOWNLOAD_TIMEOUT``: seconds to connect, and the stall window: an attempt that
  gets under 1 KiB in this long has stalled (20);
* ``SSLD_ZOO_DOWNLOAD_STALL_RETRIES``: retries after a stall, in a row without progress (2):
  by default a stalled server is given up after about a minute (3 x 20 s + 1.5 s of backoff);
* ``SSLD_ZOO_DOWNLOAD_DEADLINE``: seconds for one file, all retries and waits included (3600);
* ``SSLD_ZOO_DOWNLOAD_RETRIES``: other failed attempts in a row (dropped connections, 5xx,
  429) before a URL is given up (4);
* ``SSLD_ZOO_MAX_FILE_BYTES``: the largest weights file read or downloaded (16 GiB).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Settings", "settings", "cache_dir", "is_offline"]


@dataclass(frozen=True)
class Settings:
    """The weights settings in force (see the module docstring for the variables)."""

    home: Path
    offline: bool
    mirror: str | None
    timeout_s: float
    deadline_s: float
    retries: int
    stall_retries: int
    max_file_bytes: int


def _number(name: str, default: float, kind: type = float, minimum: float = 0) -> float:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or value < minimum or value != value:  # also refuses NaN
        raise ValueError(f"{name}={text!r}: expected a {kind.__name__} >= {minimum}")
    return value


def is_offline() -> bool:
    """Whether ``SSLD_ZOO_OFFLINE`` forbids network access."""
    return os.environ.get("SSLD_ZOO_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def cache_dir() -> Path:
    """``$SSLD_ZOO_HOME``, default ``~/.cache/ssld_zoo``."""
    return Path(os.environ.get("SSLD_ZOO_HOME") or Path.home() / ".cache" / "ssld_zoo")


def settings() -> Settings:
    """The settings from the environment; a malformed number is a one-line ValueError."""
    return Settings(
        home=cache_dir(),
        offline=is_offline(),
        mirror=os.environ.get("SSLD_ZOO_MIRROR", "").strip() or None,
        timeout_s=_number("SSLD_ZOO_DOWNLOAD_TIMEOUT", 20.0, minimum=0.01),
        deadline_s=_number("SSLD_ZOO_DOWNLOAD_DEADLINE", 3600.0, minimum=0.01),
        retries=int(_number("SSLD_ZOO_DOWNLOAD_RETRIES", 4, int)),
        stall_retries=int(_number("SSLD_ZOO_DOWNLOAD_STALL_RETRIES", 2, int)),
        max_file_bytes=int(_number("SSLD_ZOO_MAX_FILE_BYTES", 16 * 2**30, int, minimum=1)),
    )
