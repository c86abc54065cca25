"""Get a weights file into the cache, trusting nothing about it before it validated.

:func:`obtain` is the protocol: use the cached file if it still has its pinned hash and still
validates (else quarantine it, say so, and fetch again); otherwise, under a per-file lock and
within one deadline, fetch it (from ``SSLD_ZOO_MIRROR`` instead when set), check its hash
against every pin, validate it (the caller's parse + convert + check against the
architecture), and only then move it into ``downloads/`` and record its hash. A file that
fails anywhere leaves neither a cached file nor a recorded hash behind.

Pins, all of which must hold: the card's published sha256 (for its first URL's file), the
sha256 prefix a torch.hub-style file name publishes (``name-<hex>.pth``), and the hash
recorded when the file first validated.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Callable, Sequence, TypeVar

from ssld_zoo.weights import trust
from ssld_zoo.weights.cache import downloads_dir, quarantine
from ssld_zoo.weights.errors import (
    CacheRepairWarning,
    ChecksumError,
    DeadlineError,
    DownloadError,
    HTTPStatusError,
    NotWeightsError,
    OfflineError,
    WeightsFileError,
)
from ssld_zoo.weights.fetch import Deadline, fetch, part_paths
from ssld_zoo.weights.fileops import LockTimeout, locked, sha256_of
from ssld_zoo.weights.settings import settings
from ssld_zoo.weights.urls import file_name_for, is_url, mirror_location, published_prefix

__all__ = ["obtain", "normalise_sha256", "Pin"]

T = TypeVar("T")
_HEX64 = re.compile(r"[0-9a-f]{64}")
Pin = tuple[str, str]  # (sha256 or a prefix of it, where it comes from)


def normalise_sha256(sha256: str | None) -> str | None:
    """A published checksum in lower case; ValueError unless 64 hexadecimal digits."""
    if sha256 is None:
        return None
    text = sha256.strip().lower()
    if not _HEX64.fullmatch(text):
        raise ValueError(f"sha256 must be 64 hexadecimal digits, got {sha256!r}")
    return text


def _pins(name: str, published: str | None) -> list[Pin]:
    pins: list[Pin] = []
    if published:
        pins.append((published, "published checksum"))
    prefix = published_prefix(name)
    if prefix:
        pins.append((prefix, f"the sha256 prefix in the file name {name}"))
    recorded = trust.recorded_sha256(name)
    if recorded:
        pins.append((recorded, f"recorded in {trust.records_path()} when it first validated"))
    return pins


def _broken_pin(digest: str, pins: list[Pin]) -> Pin | None:
    return next((p for p in pins if not digest.startswith(p[0])), None)


def _sniff(path: Path) -> str:
    """A hint about what a file that failed to parse really is."""
    try:
        with open(path, "rb") as f:
            head = f.read(64).lstrip()
    except OSError:
        return ""
    if head[:1] in (b"<", b"{"):
        text = head[:40].decode("latin-1").split("\n")[0]
        return f" (it starts with {text!r}: a web page or an error message, not weights)"
    return ""


def _manual_hint(urls: Sequence[str], names: Sequence[str], sha256: str | None) -> str:
    hint = (
        f"To install it by hand, save {urls[0]} as {downloads_dir() / names[0]}"
        + (f" (sha256 {sha256})" if sha256 else "")
        + ", or point SSLD_ZOO_MIRROR at a server or folder that has it"
    )
    return hint + "."


def _use_cached(
    path: Path, url: str, name: str, pins: list[Pin], validate: Callable[[Path, str], T], arch: str
) -> tuple[Path, T, str] | None:
    """The cached file, if it keeps its pins and validates; a damaged one is quarantined.
    A sound file (it validated before, for another architecture) that does not fit ``arch``
    is the caller's mistake: its error is raised and the file stays."""
    if not path.is_file():
        return None
    digest = sha256_of(path)
    broken = _broken_pin(digest, pins)
    try:
        if broken is not None:
            raise ChecksumError(f"sha256 {digest}, expected {broken[0]} ({broken[1]})")
        result = validate(path, name)
    except (ChecksumError, WeightsFileError) as e:
        rec = trust.read_records().get(name)
        if (
            isinstance(e, WeightsFileError)
            and rec
            and rec["sha256"] == digest
            and rec["arch"] != arch
        ):
            raise
        where = quarantine(path)
        warnings.warn(
            f"{path}: damaged cache entry ({e}); moved it to {where} and fetching {name} again",
            CacheRepairWarning,
            stacklevel=4,
        )
        return None
    trust.record(name, digest, url, path.stat().st_size, arch)  # e.g. a file dropped in by hand
    return path, result, digest


def _fetch_one(
    url: str,
    location: str | Path,
    name: str,
    published: str | None,
    validate: Callable[[Path, str], T],
    arch: str,
    deadline: Deadline,
    progress: bool,
) -> tuple[Path, T, str]:
    dest = downloads_dir() / name
    try:
        with locked(dest, deadline.remaining()):
            got = _use_cached(dest, url, name, _pins(name, published), validate, arch)
            if got is not None:  # another process fetched it while we waited
                return got
            return _fetch_locked(
                url, location, dest, _pins(name, published), validate, arch, deadline, progress
            )
    except LockTimeout as e:
        raise DeadlineError(f"{name}: {e} (SSLD_ZOO_DOWNLOAD_DEADLINE)") from None


def _fetch_locked(
    url: str,
    location: str | Path,
    dest: Path,
    pins: list[Pin],
    validate: Callable[[Path, str], T],
    arch: str,
    deadline: Deadline,
    progress: bool,
) -> tuple[Path, T, str]:
    """Fetch, check the pins, validate; only then move into place and record the hash."""
    part, meta = part_paths(dest)
    try:
        tmp = fetch(location, dest, settings(), deadline, progress)
    except NotWeightsError:
        part.unlink(missing_ok=True)
        meta.unlink(missing_ok=True)
        raise
    try:
        digest = sha256_of(tmp)
        broken = _broken_pin(digest, pins)
        if broken is not None:
            forget = (
                f"; if the file really changed upstream: ssld-zoo cache forget {dest.name}"
                if broken[1].startswith("recorded")
                else ""
            )
            raise ChecksumError(
                f"sha256 mismatch for {location}: expected {broken[0]} "
                f"({broken[1]}), got {digest}; nothing was cached{forget}"
            )
        try:
            result = validate(tmp, dest.name)
        except WeightsFileError as e:
            raise NotWeightsError(
                f"{location}: the downloaded file is not valid weights for "
                f"{arch}: {e}{_sniff(tmp)}; nothing was cached"
            ) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        meta.unlink(missing_ok=True)
        raise
    size = tmp.stat().st_size
    os.replace(tmp, dest)
    meta.unlink(missing_ok=True)
    trust.record(dest.name, digest, str(location), size, arch)
    return dest, result, digest


def _combined(failures: list[DownloadError], message: str) -> DownloadError:
    if any(isinstance(e, ChecksumError) for e in failures):
        return ChecksumError(message)
    first = failures[0]
    if all(type(e) is type(first) for e in failures):
        if isinstance(first, HTTPStatusError):
            err = HTTPStatusError(first.url, first.status)
            err.args = (message,)
            return err
        return type(first)(message)
    return DownloadError(message)


def obtain(
    urls: Sequence[str],
    validate: Callable[[Path, str], T],
    *,
    arch: str,
    sha256: str | None = None,
    progress: bool = True,
    deadline: Deadline | None = None,
) -> tuple[Path, T, str]:
    """Return ``(cached file, validate(file), its sha256)`` for a weights file.

    Args:
        urls: the file's URL, or several mirrors tried in order; each is cached as
            ``downloads/<file name>`` (see :func:`~ssld_zoo.weights.urls.file_name_for`).
        validate: ``validate(path, file name)`` parses, converts and checks the file (raises
            :class:`~ssld_zoo.weights.errors.WeightsFileError` when it is not valid weights);
            the path of a fresh download does not end in the file name yet.
        arch: the architecture ``validate`` checks against (recorded with the hash).
        sha256: the published checksum of the first URL's file, if known.
        progress: show a progress bar (only when stderr is a terminal).
        deadline: the caller's, when it has already spent some of the time (waiting for a
            lock); by default ``SSLD_ZOO_DOWNLOAD_DEADLINE`` from now.

    Raises:
        ChecksumError: a download does not have a pinned hash.
        NotWeightsError: the server sent something that is not these weights.
        OfflineError: ``SSLD_ZOO_OFFLINE`` is set and the file is not cached.
        DeadlineError: not done within ``SSLD_ZOO_DOWNLOAD_DEADLINE``.
        DownloadError: every URL failed; the one-line message says why, for each, and where to
            put the file by hand.
    """
    urls = [urls] if isinstance(urls, str) else list(urls)
    if not urls:
        raise ValueError("obtain() needs at least one URL")
    published = normalise_sha256(sha256)
    names = [file_name_for(u) for u in urls]  # validates every URL before any work
    pinned = {names[0]: published}
    for url, name in zip(urls, names):
        got = _use_cached(
            downloads_dir() / name, url, name, _pins(name, pinned.get(name)), validate, arch
        )
        if got is not None:
            return got
    s = settings()
    if s.offline and not (s.mirror and not is_url(s.mirror)):  # a mirror folder is no network
        raise OfflineError(
            f"SSLD_ZOO_OFFLINE is set and {names[0]} is not cached; no "
            f"download was attempted. {_manual_hint(urls, names, published)}"
        )
    sources = list(
        dict.fromkeys(
            (url, mirror_location(s.mirror, name) if s.mirror else url, name)
            for url, name in zip(urls, names)
        )
    )
    deadline = deadline or Deadline(s.deadline_s)
    failures: list[DownloadError] = []
    for url, location, name in sources:
        try:
            return _fetch_one(
                url, location, name, pinned.get(name), validate, arch, deadline, progress
            )
        except DownloadError as e:
            failures.append(e)
            if isinstance(e, DeadlineError):
                break
    listing = "; ".join(str(e) for e in failures)
    raise _combined(
        failures, f"could not get {names[0]}: {listing}. {_manual_hint(urls, names, published)}"
    )
