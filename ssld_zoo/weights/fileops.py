"""Atomic writes and file hashes (used by the cache, exports and the teacher cache).

A file written by :func:`atomic_write` gets the permissions ``open()`` would give it (0666
less the user's umask), not the 0600 of the temporary file it starts as, so a cache can be
shared as the user's umask says. A write that fails for lack of room names the file and the
cause (no space left, the file-size limit, the disk quota), not only the byte counts numpy
reports ("8 requested and 5 written").
"""

from __future__ import annotations

import errno
import hashlib
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

__all__ = ["atomic_write", "sha256_of", "locked", "LockTimeout", "WriteFailure"]

_BLOCK = 1 << 20


class WriteFailure(OSError):
    """A file could not be written (no space, too large, over quota); names the file."""


def _umask() -> int:
    """The process's umask, read without changing it where the OS allows."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # elsewhere: read by setting it, and put it back at once
    os.umask(mask)
    return mask


def _fsize_limit() -> int | None:
    """RLIMIT_FSIZE in bytes, None when unlimited (or on an OS without it)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    return None if limit == resource.RLIM_INFINITY else limit


def _write_failure(e: OSError, dest: Path, tmp: Path) -> WriteFailure | None:
    """What stopped a write of ``dest``, in words, when it was room or size; else None."""
    folder = dest.parent
    code = e.errno
    if code is None and "requested and" in str(e):  # numpy's short write: errno not kept
        try:
            st = os.statvfs(folder)
            free = st.f_bavail * st.f_frsize
        except OSError:
            free = None
        limit = _fsize_limit()
        written = tmp.stat().st_size if tmp.exists() else 0
        if limit is not None and written >= limit:
            code = errno.EFBIG
        elif free is not None and free < _BLOCK:
            code = errno.ENOSPC
    if code == errno.ENOSPC:
        try:
            st = os.statvfs(folder)
            room = f" ({st.f_bavail * st.f_frsize} bytes free)"
        except OSError:
            room = ""
        cause = f"no space left on the device holding {folder}{room}"
    elif code == errno.EFBIG:
        limit = _fsize_limit()
        shown = "" if limit is None else f" of {limit} bytes"
        cause = (
            f"file too large: over the file-size limit{shown} (RLIMIT_FSIZE, `ulimit -f`)"
            " or the file system's largest file"
        )
    elif code == errno.EDQUOT:
        cause = f"disk quota exceeded on {folder}"
    else:
        return None
    failure = WriteFailure(
        f"{dest}: cannot be written: {cause} ({e}); nothing half-written was kept"
    )
    failure.errno = code  # kept for callers, out of the message ("[Errno 28] ...")
    return failure


def atomic_write(dest: Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temp file beside ``dest`` and rename it into place on success,
    so that ``dest`` is never seen half written; the temp file is removed on failure (a
    failure for lack of room is a :class:`WriteFailure` naming ``dest`` and the cause)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 is for the temp file only
        os.replace(tmp, dest)
    except OSError as e:
        failure = _write_failure(e, dest, Path(tmp))
        Path(tmp).unlink(missing_ok=True)
        if failure is not None:
            raise failure from e
        raise
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
        raise LockTimeout(
            f"waited {timeout_s:.1f} s for {lock_file}, held by another process writing {path.name}"
        ) from None
