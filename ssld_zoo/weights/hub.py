"""Download and cache weight files.

Cache layout under :func:`cache_dir` (``$SSLD_ZOO_HOME``, default ``~/.cache/ssld_zoo``)::

    downloads/<file>                complete, verified downloads; <file> is the URL's basename,
                                    or for a Google Drive URL its ``#fragment``
    downloads/<file>.part           an interrupted download, resumed with an HTTP Range request
    downloads/<file>.part.json      which URL (and server version) the ``.part`` holds
    downloads/.gdown/               gdown's own partial files (Google Drive downloads)
    converted/<weight>.safetensors  converted tensors (written by :mod:`ssld_zoo.api`)
    sha256.json                     sha256 of files downloaded without a published checksum
                                    (trust on first use: later uses and re-downloads must match)

A file enters ``downloads/`` only by an atomic rename after it is complete and its checksum
verified, so a file there is never partial. ``SSLD_ZOO_OFFLINE=1`` forbids network access.
"""
from __future__ import annotations

import fnmatch
import hashlib
import http.client
import inspect
import json
import os
import re
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from ssld_zoo.registry import WeightCard

__all__ = [
    "cache_dir", "converted_path", "atomic_write", "download", "cached_path", "file_name_for",
    "is_offline", "sha256_of", "recorded_sha256", "cache_entries", "find_entries", "clear_cache", "CacheEntry",
    "DownloadError", "HTTPStatusError", "ChecksumError", "OfflineError",
]

# Network behaviour. Module attributes so that tests (and users) can tune them.
TIMEOUT_S = 30.0          # connect and per-read timeout
RETRIES = 4               # consecutive failed attempts (without new bytes) per URL
MAX_ATTEMPTS = 50         # hard bound on attempts per URL, even when each one makes progress
BACKOFF_S = 0.5           # first retry delay; doubles per consecutive failure
MAX_BACKOFF_S = 8.0
CHUNK = 1 << 20
USER_AGENT = "ssld-zoo (+https://pypi.org/project/ssld-zoo/)"

_GDRIVE_HOSTS = ("drive.google.com", "drive.usercontent.google.com", "docs.google.com")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+\-]*")


# --------------------------------------------------------------------------- errors

class DownloadError(RuntimeError):
    """A weight file could not be obtained."""


class HTTPStatusError(DownloadError):
    """The server answered with an error status that retrying will not fix (404, 403, ...)."""

    def __init__(self, url: str, status: int, reason: str = ""):
        self.url, self.status = url, status
        super().__init__(f"{url}: HTTP {status} {reason}".rstrip())


class ChecksumError(DownloadError):
    """A downloaded or cached file does not have the expected sha256."""


class OfflineError(DownloadError):
    """``SSLD_ZOO_OFFLINE`` is set and the file is not in the cache."""


class _Transient(Exception):
    """A failure worth retrying (connection dropped, timeout, 5xx)."""


# --------------------------------------------------------------------------- paths

def cache_dir() -> Path:
    """``$SSLD_ZOO_HOME``, default ``~/.cache/ssld_zoo``."""
    return Path(os.environ.get("SSLD_ZOO_HOME") or Path.home() / ".cache" / "ssld_zoo")


def converted_path(card: WeightCard) -> Path:
    """Where the converted (safetensors) tensors of a registered weight are cached."""
    return cache_dir() / "converted" / f"{card.name}.safetensors"


def _downloads_dir() -> Path:
    return cache_dir() / "downloads"


def _records_path() -> Path:
    return cache_dir() / "sha256.json"


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


def is_google_drive(url: str) -> bool:
    """Whether ``url`` is a Google Drive link (fetched through gdown)."""
    return (urllib.parse.urlsplit(url).hostname or "") in _GDRIVE_HOSTS


def file_name_for(url: str) -> str:
    """The cache file name of a URL: its basename, or for Google Drive its ``#fragment``.

    Google Drive links (``https://drive.google.com/uc?id=XYZ``) carry no file name, so the
    zoo's cards name the file in the fragment: ``...uc?id=XYZ#ResNet50_vd_ssld.pdparams``.
    """
    parts = urllib.parse.urlsplit(url)
    if is_google_drive(url):
        name = urllib.parse.unquote(parts.fragment)
        if not name:
            raise ValueError(f"{url}: a Google Drive URL must name its file in the fragment, "
                             "e.g. https://drive.google.com/uc?id=FILE_ID#Model.pdparams")
    else:
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"{url}: unsupported URL scheme {parts.scheme!r}; expected "
                             "http(s) or a Google Drive link")
        name = urllib.parse.unquote(parts.path.rsplit("/", 1)[-1])
    # The name becomes a path in the cache: refuse anything that could leave it.
    if not _SAFE_NAME.fullmatch(name) or name.endswith((".part", ".json")):
        raise ValueError(f"{url}: cannot derive a safe cache file name from it (got {name!r}); "
                         "expected letters, digits and . _ + - only")
    return name


def cached_path(url: str) -> Path:
    """The exact path where the file of ``url`` is (or will be) cached."""
    return _downloads_dir() / file_name_for(url)


def is_offline() -> bool:
    """Whether ``SSLD_ZOO_OFFLINE`` forbids network access."""
    return os.environ.get("SSLD_ZOO_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An inter-process lock on ``path`` (a hidden ``.lock`` file beside it): two processes
    downloading the same file must not append to one ``.part``."""
    from filelock import FileLock

    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path.with_name(f".{path.name}.lock"))):
        yield


# --------------------------------------------------------------------------- checksums

def sha256_of(path: Path) -> str:
    """The hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _read_records() -> dict[str, dict[str, Any]]:
    path = _records_path()
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
        files = data["files"]
        if not isinstance(files, dict):
            raise TypeError("'files' is not an object")
    except (ValueError, KeyError, TypeError) as e:
        # A damaged record file must not silently disable verification.
        raise DownloadError(f"{path}: unreadable checksum records ({e}); fix or delete it "
                            "(deleting it forgets the trusted-on-first-use hashes)") from e
    return files


def recorded_sha256(name: str) -> str | None:
    """The sha256 recorded for cache file ``name`` when it was first downloaded, if any."""
    rec = _read_records().get(name)
    return rec.get("sha256") if isinstance(rec, dict) else None


def _update_records(update: Callable[[dict[str, dict[str, Any]]], None]) -> None:
    path = _records_path()
    with _locked(path):
        files = _read_records()
        update(files)
        text = json.dumps({"format": 1, "files": files}, indent=1, sort_keys=True)
        atomic_write(path, lambda tmp: tmp.write_text(text + "\n"))


def _record(name: str, url: str, digest: str, size: int) -> None:
    def add(files: dict[str, dict[str, Any]]) -> None:
        files[name] = {"sha256": digest, "url": url, "size": size,
                       "recorded": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    if recorded_sha256(name) != digest:
        _update_records(add)


def _normalise_sha(sha256: str | None) -> str | None:
    if sha256 is None:
        return None
    text = sha256.strip().lower()
    if not _HEX64.fullmatch(text):
        raise ValueError(f"sha256 must be 64 hexadecimal digits, got {sha256!r}")
    return text


# --------------------------------------------------------------------------- progress

class _Bar:
    """A rich progress bar on stderr; does nothing when disabled or stderr is not a terminal."""

    def __init__(self, label: str, enabled: bool):
        self._progress = None
        self._task = None
        if enabled and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn,
                                       TimeRemainingColumn, TransferSpeedColumn)
            self._progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                                      DownloadColumn(), TransferSpeedColumn(),
                                      TimeRemainingColumn(), console=Console(stderr=True))
            self._task = self._progress.add_task(label, total=None)

    def __enter__(self) -> "_Bar":
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(self, completed: int, total: int | None) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=completed, total=total)


# --------------------------------------------------------------------------- HTTP(S)

def _content_range(value: str | None) -> tuple[int, int, int | None] | None:
    m = re.fullmatch(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*", value or "")
    if not m:
        return None
    return int(m[1]), int(m[2]), None if m[3] == "*" else int(m[3])


def _part_paths(dest: Path) -> tuple[Path, Path]:
    part = dest.with_name(dest.name + ".part")
    return part, part.with_name(part.name + ".json")


def _http_attempt(url: str, part: Path, meta: Path, validator: str | None,
                  bar: _Bar) -> str | None:
    """One GET, appending to ``part`` (resuming at its size); returns the server's version
    validator. Raises :class:`_Transient` for a failure worth retrying."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        if validator:
            # If-Range: the server sends the whole (new) file if it changed since the .part.
            headers["If-Range"] = validator
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                      timeout=TIMEOUT_S)
    except urllib.error.HTTPError as e:
        with e:
            if e.code == 416 and offset:
                m = re.fullmatch(r"\s*bytes\s+\*/(\d+)\s*", e.headers.get("Content-Range", ""))
                if m and int(m[1]) == offset:
                    return validator  # the .part already holds the whole file
                part.unlink(missing_ok=True)
                raise _Transient("the server refused to resume the partial file; restarting")
            if e.code in (408, 425, 429) or e.code >= 500:
                raise _Transient(f"HTTP {e.code} {e.reason}") from None
            raise HTTPStatusError(url, e.code, str(e.reason)) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        raise _Transient(f"{type(e).__name__}: {getattr(e, 'reason', e)}") from None

    with resp:
        encoding = resp.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise DownloadError(f"{url}: the server sent a {encoding!r}-encoded body although "
                                "identity was requested")
        if resp.status == 206:
            rng = _content_range(resp.headers.get("Content-Range"))
            if rng is None or rng[0] != offset:
                part.unlink(missing_ok=True)
                raise _Transient(f"the server resumed at the wrong offset "
                                 f"(Content-Range {resp.headers.get('Content-Range')!r}, "
                                 f"asked for byte {offset}); restarting")
            total, mode = rng[2], "ab"
        elif resp.status == 200:
            # A full body: the server ignores Range, or If-Range saw a new version.
            length = resp.headers.get("Content-Length")
            offset, mode = 0, "wb"
            total = int(length) if length and length.isdigit() else None
        else:
            raise DownloadError(f"{url}: unexpected HTTP status {resp.status}")
        etag = resp.headers.get("ETag")
        new_validator = (etag if etag and not etag.startswith("W/")
                         else resp.headers.get("Last-Modified"))
        # Say what the .part holds before writing to it, so a later process can resume it.
        state = json.dumps({"url": url, "validator": new_validator})
        atomic_write(meta, lambda tmp: tmp.write_text(state))
        done = offset
        bar.update(done, total)
        with open(part, mode) as f:
            try:
                while True:
                    chunk = resp.read(CHUNK)
                    if not chunk:
                        break
                    f.write(chunk)
                    done += len(chunk)
                    bar.update(done, total)
            except (OSError, http.client.HTTPException) as e:
                raise _Transient(f"connection lost after {done} bytes "
                                 f"({type(e).__name__}: {e})") from None
    if total is not None and done != total:
        if done > total:
            part.unlink(missing_ok=True)
        raise _Transient(f"connection closed after {done} of {total} bytes")
    return new_validator


def _fetch_http(url: str, dest: Path, show: bool) -> Path:
    """Download ``url`` into ``dest``'s ``.part`` (resuming a previous one) and return it."""
    part, meta = _part_paths(dest)
    validator = None
    if part.exists():
        try:
            state = json.loads(meta.read_text())
        except (OSError, ValueError):
            state = {}
        if state.get("url") != url:
            # Bytes of unknown or other origin (another mirror): do not splice them in.
            part.unlink()
        else:
            validator = state.get("validator")
    failures = attempts = 0
    with _Bar(dest.name, show) as bar:
        while True:
            attempts += 1
            before = part.stat().st_size if part.exists() else 0
            try:
                _http_attempt(url, part, meta, validator, bar)
                return part
            except _Transient as e:
                error = e
            after = part.stat().st_size if part.exists() else 0
            failures = 0 if after > before else failures + 1
            if failures > RETRIES or attempts >= MAX_ATTEMPTS:
                raise DownloadError(f"{url}: gave up after {attempts} attempts: {error}")
            if meta.exists():
                try:
                    validator = json.loads(meta.read_text()).get("validator")
                except (OSError, ValueError):
                    validator = None
            time.sleep(min(MAX_BACKOFF_S, BACKOFF_S * 2 ** max(failures - 1, 0)))


# --------------------------------------------------------------------------- Google Drive

def _gdown_source(url: str) -> str:
    """The URL handed to gdown: the fragment dropped, usercontent links turned into the
    ``uc?id=`` form gdown understands (it handles Drive's confirmation pages)."""
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qs(parts.query)
    if parts.hostname == "drive.usercontent.google.com" and query.get("id"):
        return f"https://drive.google.com/uc?id={query['id'][0]}"
    return urllib.parse.urlunsplit(parts._replace(fragment=""))


def _gdown_options(fn: Callable[..., Any], bar: _Bar) -> dict[str, Any]:
    """The optional keyword arguments the installed gdown accepts (gdown 5 lacks timeout,
    retries and the progress callback, gdown 6 has them)."""
    wanted = {"use_cookies": False, "timeout": TIMEOUT_S, "retries": RETRIES,
              "progress": lambda done, total: bar.update(done, total)}
    params = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return wanted
    return {k: v for k, v in wanted.items() if k in params}


def _fetch_gdrive(url: str, dest: Path, show: bool) -> Path:
    """Download a Google Drive file through gdown into a staging folder and return it."""
    import gdown
    import requests

    staging = dest.parent / ".gdown"
    staging.mkdir(parents=True, exist_ok=True)
    out = staging / dest.name
    with _Bar(dest.name, show) as bar:
        try:
            # resume=True: gdown keeps and resumes its own .part in `staging`; retries are
            # gdown's (bounded, with backoff). No cookie file: nothing written outside the cache.
            gdown.download(_gdown_source(url), output=str(out), quiet=True, resume=True,
                           **_gdown_options(gdown.download, bar))
        except requests.HTTPError as e:
            status = e.response.status_code if e.response is not None else 0
            raise HTTPStatusError(url, status, getattr(e.response, "reason", "") or "") from None
        except (gdown.exceptions.DownloadError, requests.RequestException, OSError) as e:
            raise DownloadError(f"{url}: {type(e).__name__}: {e}") from None
    if not out.is_file():
        raise DownloadError(f"{url}: gdown reported success but wrote no file at {out}")
    return out


# --------------------------------------------------------------------------- download

def _manual_hint(urls: Sequence[str], sha256: str | None) -> str:
    lines = ["To install the file by hand, download it from one of:"]
    lines += [f"  {u}" for u in urls]
    lines.append(f"and save it as:\n  {cached_path(urls[0])}")
    for u in urls[1:]:
        if cached_path(u) != cached_path(urls[0]):
            lines.append(f"  (or, from {u}: {cached_path(u)})")
    if sha256:
        lines.append(f"Its sha256 must be {sha256}.")
    return "\n".join(lines)


def _verify(path: Path, url: str, expected: str | None, origin: str) -> str:
    """Return the sha256 of ``path``; raise :class:`ChecksumError` if it is not ``expected``."""
    actual = sha256_of(path)
    if expected is not None and actual != expected:
        raise ChecksumError(f"sha256 mismatch for {url} ({path}): expected {expected} "
                            f"({origin}), got {actual}")
    return actual


def download(urls: Sequence[str] | str, sha256: str | None = None,
             progress: bool | str | None = True) -> Path:
    """Return the cached file of a weight, downloading it first if needed.

    Args:
        urls: the file's URL, or several mirrors tried in order. Each URL's file is cached as
            ``cache_dir()/downloads/<file name>`` (see :func:`file_name_for`).
        sha256: the published checksum of the first URL's file, if known. Without one, the
            hash of the first download is recorded and later uses must match it.
        progress: show a progress bar (only when stderr is a terminal).

    A cached file is returned without network access, after checking its hash against
    ``sha256`` or the recorded one. Downloads resume after dropped connections, retry with
    bounded backoff, and reach the cache only complete and verified. With
    ``SSLD_ZOO_OFFLINE=1`` a missing file raises :class:`OfflineError` at once, saying where
    to put the file.

    Raises:
        ChecksumError: a downloaded or cached file has the wrong hash.
        OfflineError: offline mode and the file is not cached.
        DownloadError: every URL failed (the message lists why, and where to drop the file).
    """
    if isinstance(urls, str):
        urls = [urls]
    urls = list(urls)
    if not urls:
        raise ValueError("download() needs at least one URL")
    if sha256 is not None and not isinstance(progress, bool) and not _HEX64.fullmatch(
            sha256.strip().lower()):
        # The former signature download(urls, file_name, sha256): the file name now comes
        # from the URL itself.
        warnings.warn("hub.download(urls, file_name, sha256) is deprecated: call "
                      "hub.download(urls, sha256); the file name comes from the URL",
                      DeprecationWarning, stacklevel=2)
        sha256, progress = progress, True
    given = _normalise_sha(sha256)
    names = [file_name_for(u) for u in urls]  # validates every URL before any work

    def expected(name: str) -> tuple[str | None, str]:
        if given is not None and name == names[0]:
            return given, "published checksum"
        return recorded_sha256(name), f"recorded in {_records_path()} at first download"

    for url, name in zip(urls, names):
        path = _downloads_dir() / name
        if path.is_file():
            want, origin = expected(name)
            try:
                digest = _verify(path, url, want, origin)
            except ChecksumError as e:
                raise ChecksumError(f"{e}. The cached file was changed or corrupted; delete it "
                                    f"to download it again: ssld-zoo cache clear {name}") from None
            if want is None:
                _record(name, url, digest, path.stat().st_size)  # e.g. a file dropped in by hand
            return path

    if is_offline():
        raise OfflineError(f"SSLD_ZOO_OFFLINE is set and {names[0]} is not cached; no "
                           f"download was attempted.\n{_manual_hint(urls, given)}")

    failures: list[DownloadError] = []
    for url, name in zip(urls, names):
        want, origin = expected(name)
        try:
            return _fetch(url, name, want, origin, progress is not False)
        except DownloadError as e:
            failures.append(e)
    listing = "\n".join(f"  - {e}" for e in failures)
    kind = ChecksumError if any(isinstance(e, ChecksumError) for e in failures) else DownloadError
    raise kind(f"could not download {names[0]}:\n{listing}\n{_manual_hint(urls, given)}")


def _fetch(url: str, name: str, want: str | None, origin: str, show: bool) -> Path:
    """Download one URL into the cache: fetch, verify, rename into place, record the hash."""
    dest = _downloads_dir() / name
    with _locked(dest):
        if dest.is_file():  # another process finished it while we waited for the lock
            _verify(dest, url, want, origin)
            return dest
        fetch = _fetch_gdrive if is_google_drive(url) else _fetch_http
        tmp = fetch(url, dest, show)
        try:
            digest = _verify(tmp, url, want, origin)
        except ChecksumError:
            tmp.unlink(missing_ok=True)
            _part_paths(dest)[1].unlink(missing_ok=True)
            raise
        size = tmp.stat().st_size
        os.replace(tmp, dest)
        _part_paths(dest)[1].unlink(missing_ok=True)
    _record(name, url, digest, size)
    return dest


# --------------------------------------------------------------------------- cache inspection

@dataclass(frozen=True)
class CacheEntry:
    """One file in the cache."""

    path: Path
    kind: str                   # "download" | "converted" | "partial"
    size: int                   # bytes
    weights: tuple[str, ...]    # registered weight names the file belongs to (may be empty)
    sha256: str | None = None   # recorded hash (downloads only)

    @property
    def name(self) -> str:
        return self.path.name


def _weights_by_file() -> dict[str, tuple[str, ...]]:
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


def cache_entries() -> list[CacheEntry]:
    """Every file in the cache: complete downloads, converted safetensors, partial downloads."""
    root = cache_dir()
    by_file = _weights_by_file()
    records = _read_records()
    entries: list[CacheEntry] = []
    downloads = root / "downloads"
    if downloads.is_dir():
        for p in sorted(downloads.iterdir()):
            if not p.is_file() or p.name.startswith(".") or p.name.endswith(".part.json"):
                continue
            if p.name.endswith(".part"):
                base = p.name[: -len(".part")]
                entries.append(CacheEntry(p, "partial", p.stat().st_size,
                                          by_file.get(base, ())))
            else:
                rec = records.get(p.name) or {}
                entries.append(CacheEntry(p, "download", p.stat().st_size,
                                          by_file.get(p.name, ()), rec.get("sha256")))
        gd = downloads / ".gdown"
        if gd.is_dir():
            for p in sorted(gd.iterdir()):
                if not p.is_file() or p.name.startswith("."):
                    continue
                # gdown names its partial files <name><8 random chars>.part.
                base = p.name[: -len(".part") - 8] if p.name.endswith(".part") else p.name
                entries.append(CacheEntry(p, "partial", p.stat().st_size,
                                          by_file.get(base, ())))
    converted = root / "converted"
    if converted.is_dir():
        for p in sorted(converted.glob("*.safetensors")):
            entries.append(CacheEntry(p, "converted", p.stat().st_size, _converted_weights(p)))
    return entries


def find_entries(pattern: str | None = None) -> list[CacheEntry]:
    """The cache entries whose file name, or a weight name they belong to, matches the
    shell-style ``pattern`` (case-insensitive); all entries when ``pattern`` is None."""
    entries = cache_entries()
    if pattern is None:
        return entries
    pat = pattern.lower()
    return [e for e in entries
            if any(fnmatch.fnmatch(c.lower(), pat) for c in (e.name, e.path.stem, *e.weights))]


def clear_cache(pattern: str | None = None, forget_hashes: bool = False) -> list[CacheEntry]:
    """Delete cached files and return what was deleted.

    Args:
        pattern: shell-style pattern matched (case-insensitively) against file names and the
            weight names they belong to (``'resnet50_vd*'``, ``'*.pdparams'``); None deletes
            everything.
        forget_hashes: also drop the recorded sha256 of deleted downloads. Kept by default,
            so that a re-download is checked against the first one (trust on first use).
    """
    removed = find_entries(pattern)
    for e in removed:
        e.path.unlink(missing_ok=True)
        if e.kind == "partial":
            e.path.with_name(e.name + ".json").unlink(missing_ok=True)
    gone = {e.name for e in removed if e.kind == "download"}
    if forget_hashes and gone and _records_path().is_file():
        _update_records(lambda files: [files.pop(n, None) for n in gone])
    return removed
