"""Download and cache weight files (placeholder: full implementation in progress)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable, Sequence

from ssld_zoo.registry import WeightCard


def cache_dir() -> Path:
    """``$SSLD_ZOO_HOME``, default ``~/.cache/ssld_zoo``."""
    return Path(os.environ.get("SSLD_ZOO_HOME") or Path.home() / ".cache" / "ssld_zoo")


def converted_path(card: WeightCard) -> Path:
    return cache_dir() / "converted" / f"{card.name}.safetensors"


def atomic_write(dest: Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temp file beside ``dest`` and rename it into place on success."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest


def download(urls: Sequence[str], file_name: str, sha256: str | None = None,
             progress: bool = True) -> Path:
    raise NotImplementedError
