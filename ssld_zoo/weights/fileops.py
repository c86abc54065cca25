"""Atomic writes and file hashes (used by the cache, exports and the teacher cache)."""
from __future__ import annotations

import hashlib
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

__all__ = ["atomic_write", "sha256_of", "locked", "LockTimeout"]

_BLOCK = 1 << 20


def atomic_write(dest: Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temp file beside ``dest`` and rename it into place on success,
    so that ``dest`` is never seen half written; the temp file is removed on failure."""
    dest = Path(dest)
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


def sha256_of(path: Path) -> str:
    """The hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_BLOCK), b""):
            h.update(block)
    return h.hexdigest()


class LockTimeout(TimeoutError):
    """Another process held a cache lock for longer than the caller would wait."""


@contextmanager
def locked(path: Path, timeout_s: float | None = None) -> Iterator[None]:
    """An inter-process lock on ``path`` (a hidden ``.<name>.lock`` file beside it), so that
    two processes never write the same cache file. Waits at most ``timeout_s`` (None: for
    ever), then raises :class:`LockTimeout` naming the lock file. The OS releases the lock of a
    process that dies, so a left-over lock file blocks nobody."""
    from filelock import FileLock, Timeout

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_file = path.with_name(f".{path.name}.lock")
    try:
        with FileLock(str(lock_file), timeout=-1 if timeout_s is None else max(timeout_s, 0)):
            yield
    except Timeout:
        raise LockTimeout(f"waited {timeout_s:.1f} s for {lock_file}, held by another "
                           f"process writing {path.name}") from None
