"""Bring the bytes of one location into a partial file in the cache.

HTTP(S) goes through ``requests`` (connections, TLS, proxies from ``HTTPS_PROXY``, redirects,
Content-Length enforcement by urllib3); Google Drive links through ``gdown`` (Drive's
confirmation pages); a local mirror folder is copied. What none of those libraries does is
here: an overall deadline that a trickling server cannot stretch, resuming a ``.part`` only
with bytes of the same URL and server version, restarting when a server ignores Range,
bounded retries with backoff on transient failures (dropped connections, 5xx, 429), refusing
HTML pages served with 200, and a size cap.

Stall policy: an attempt that receives under ``STALL_BYTES`` in ``SSLD_ZOO_DOWNLOAD_TIMEOUT``
seconds (20), or no answer at all, has stalled. A stalled server is retried
``SSLD_ZOO_DOWNLOAD_STALL_RETRIES`` times (2) in a row, then given up: reconnecting sometimes
reaches a healthy replica, but a server that stalled three times will not finish soon, so by
default it costs about a minute (:func:`stall_give_up_s`), not the deadline's hour. Any attempt
that brings ``STALL_BYTES`` or more resets both counts, and every retry resumes the partial
file where it stopped (Range, If-Range). The result is only a partial file: checking it and
moving it into the cache is :mod:`ssld_zoo.weights.download`'s job.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

from ssld_zoo.weights.errors import DeadlineError, DownloadError, HTTPStatusError, NotWeightsError
from ssld_zoo.weights.fileops import atomic_write
from ssld_zoo.weights.settings import Settings
from ssld_zoo.weights.urls import is_google_drive

__all__ = [
    "Deadline",
    "fetch",
    "part_paths",
    "stall_give_up_s",
    "BACKOFF_S",
    "MAX_BACKOFF_S",
    "MAX_ATTEMPTS",
]

BACKOFF_S = 0.5  # first retry delay; doubles per consecutive failure
MAX_BACKOFF_S = 8.0
MAX_ATTEMPTS = 50  # hard bound per URL, even when every attempt makes progress
MAX_REDIRECTS = 5
STALL_BYTES = 1024  # fewer bytes than this within the read timeout: stalled
CHUNK = 1 << 20
USER_AGENT = "ssld-zoo (+https://pypi.org/project/ssld-zoo/)"
_HTML_TYPES = ("text/html", "application/xhtml+xml")


class Deadline:
    """The time left for one file, all URLs and retries included."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def remaining(self) -> float:
        return max(self._end - time.monotonic(), 0.0)

    def check(self, what: str) -> None:
        """Raise :class:`DeadlineError` about ``what`` once the time is up."""
        if self.remaining() <= 0:
            raise DeadlineError(
                f"{what}: not finished within {self.seconds:g} s "
                f"(SSLD_ZOO_DOWNLOAD_DEADLINE); nothing was cached"
            )

    def sleep(self, seconds: float, what: str) -> None:
        """Sleep, but never past the deadline."""
        if seconds >= self.remaining():
            time.sleep(self.remaining())
            self.check(what)
        time.sleep(seconds)


class _Transient(Exception):
    """A failure worth retrying (connection dropped, timeout, 5xx, 429)."""

    def __init__(
        self,
        message: str,
        retry_after: float | None = None,
        restart: bool = False,
        stalled: bool = False,
    ):
        super().__init__(message)
        self.retry_after = retry_after
        self.restart = restart  # the partial file cannot be resumed: start from zero
        self.stalled = stalled  # no bytes worth the name within the timeout


def _backoff(failures: int) -> float:
    return min(MAX_BACKOFF_S, BACKOFF_S * 2 ** max(failures - 1, 0))


def stall_give_up_s(s: Settings) -> float:
    """The longest a server that stalls on every attempt is tried: ``stall_retries + 1``
    stall windows and the backoff between them (about a minute with the defaults)."""
    attempts = s.stall_retries + 1
    return attempts * s.timeout_s + sum(_backoff(k) for k in range(1, attempts))


def part_paths(dest: Path) -> tuple[Path, Path]:
    """The partial file of ``dest`` and the JSON beside it naming the URL it holds."""
    part = dest.with_name(dest.name + ".part")
    return part, part.with_name(part.name + ".json")


def fetch(
    location: str | Path, dest: Path, s: Settings, deadline: Deadline, progress: bool
) -> Path:
    """Fetch ``location`` (URL or local mirror file) for ``dest``; return the complete
    partial file (not yet checked, not yet in place)."""
    if isinstance(location, Path):
        return _copy_local(location, dest, s)
    if is_google_drive(location):
        return _fetch_gdrive(location, dest, s, deadline, progress)
    return _fetch_http(location, dest, s, deadline, progress)


# --------------------------------------------------------------------------- progress


class _Bar:
    """A rich progress bar on stderr; does nothing when disabled or stderr is not a terminal."""

    def __init__(self, label: str, enabled: bool):
        self._progress = self._task = None
        if enabled and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
            )
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


# --------------------------------------------------------------------------- local mirror


def _copy_local(src: Path, dest: Path, s: Settings) -> Path:
    if not src.is_file():
        raise DownloadError(f"{src}: not in the mirror folder (SSLD_ZOO_MIRROR)")
    if src.stat().st_size > s.max_file_bytes:
        raise NotWeightsError(
            f"{src}: {src.stat().st_size} bytes, over the "
            f"SSLD_ZOO_MAX_FILE_BYTES limit of {s.max_file_bytes}"
        )
    part, meta = part_paths(dest)
    meta.unlink(missing_ok=True)
    shutil.copyfile(src, part)
    return part


# --------------------------------------------------------------------------- HTTP(S)


def _content_range(value: str | None) -> tuple[int, int, int | None] | None:
    m = re.fullmatch(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*", value or "")
    return (int(m[1]), int(m[2]), None if m[3] == "*" else int(m[3])) if m else None


def _retry_after(value: str | None) -> float | None:
    return float(value) if value and value.strip().isdigit() else None


def _open(session, url: str, headers: dict[str, str], s: Settings, deadline: Deadline):
    import requests

    t = max(min(s.timeout_s, deadline.remaining()), 0.01)
    try:
        return session.get(url, headers=headers, stream=True, timeout=(t, t))
    except requests.TooManyRedirects:
        raise DownloadError(f"{url}: more than {MAX_REDIRECTS} redirects") from None
    except (requests.ConnectionError, requests.Timeout) as e:
        deadline.check(url)
        stalled = isinstance(e, (requests.ConnectTimeout, requests.ReadTimeout))
        raise _Transient(f"{type(e).__name__}: {e}", stalled=stalled) from None
    except requests.RequestException as e:
        raise DownloadError(f"{url}: {type(e).__name__}: {e}") from None


def _check_response(url: str, resp, offset: int, s: Settings) -> tuple[int, int | None]:
    """(offset the body starts at, total file size or None) of an acceptable response."""
    code = resp.status_code
    if (
        resp.history
        and urllib.parse.urlsplit(url).scheme == "https"
        and urllib.parse.urlsplit(resp.url).scheme != "https"
    ):
        raise DownloadError(f"{url}: redirected to {resp.url}, from https to plain http; refused")
    if code == 416 and offset:
        m = re.fullmatch(r"\s*bytes\s+\*/(\d+)\s*", resp.headers.get("Content-Range", ""))
        if m and int(m[1]) == offset:
            return offset, offset  # the .part already holds the whole file
        raise _Transient("the server refused to resume the partial file; restarting", restart=True)
    if code in (408, 425, 429) or code >= 500:
        raise _Transient(
            f"HTTP {code} {resp.reason or ''}".rstrip(),
            _retry_after(resp.headers.get("Retry-After")),
        )
    if code >= 400:
        raise HTTPStatusError(url, code, resp.reason or "")
    if code not in (200, 206):
        raise DownloadError(f"{url}: unexpected HTTP status {code}")
    encoding = resp.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise DownloadError(
            f"{url}: the server sent a {encoding!r}-encoded body although identity was requested"
        )
    ctype = resp.headers.get("Content-Type", "")
    if ctype.split(";")[0].strip().lower() in _HTML_TYPES:
        raise NotWeightsError(
            f"{url}: the server answered with a web page (Content-Type "
            f"{ctype!r}), not the weights file: a login, error or "
            "confirmation page? nothing was cached"
        )
    if code == 206:
        rng = _content_range(resp.headers.get("Content-Range"))
        if rng is None or rng[0] != offset:
            raise _Transient(
                f"the server resumed at the wrong offset (Content-Range "
                f"{resp.headers.get('Content-Range')!r} for byte {offset}); "
                "restarting",
                restart=True,
            )
        start, total = offset, rng[2]
    else:  # a full body: the server ignores Range, or If-Range saw a new version
        length = resp.headers.get("Content-Length", "")
        start, total = 0, int(length) if length.isdigit() else None
        if total == 0:
            raise NotWeightsError(f"{url}: the server sent an empty body; nothing was cached")
    if total is not None and total > s.max_file_bytes:
        raise NotWeightsError(
            f"{url}: the server announces {total} bytes, over the "
            f"SSLD_ZOO_MAX_FILE_BYTES limit of {s.max_file_bytes}"
        )
    return start, total


def _http_attempt(
    session,
    url: str,
    part: Path,
    meta: Path,
    validator: str | None,
    s: Settings,
    deadline: Deadline,
    bar: _Bar,
) -> None:
    """One GET, appending to ``part`` (resuming at its size). Raises :class:`_Transient`
    for a failure worth retrying; a restart-worthy one also drops the partial file."""
    import requests
    import urllib3

    offset = part.stat().st_size if part.exists() else 0
    headers = {}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        if validator:  # the server sends the whole (new) file if it changed since
            headers["If-Range"] = validator
    resp = _open(session, url, headers, s, deadline)
    with resp:
        try:
            start, total = _check_response(url, resp, offset, s)
        except _Transient as e:
            if e.restart:
                part.unlink(missing_ok=True)
            raise
        if start == total:
            return
        etag = resp.headers.get("ETag")
        version = etag if etag and not etag.startswith("W/") else resp.headers.get("Last-Modified")
        # Say what the .part holds before writing to it, so a later process can resume it.
        state = json.dumps({"url": url, "validator": version})
        atomic_write(meta, lambda tmp: tmp.write_text(state))
        read = getattr(resp.raw, "read1", None) or (lambda n: resp.raw.read(min(n, 1 << 16)))
        done, window_start, window_bytes = start, time.monotonic(), 0
        bar.update(done, total)
        with open(part, "ab" if start else "wb") as f:
            while True:
                deadline.check(url)
                try:
                    chunk = read(CHUNK)
                except (urllib3.exceptions.HTTPError, requests.RequestException, OSError) as e:
                    deadline.check(url)
                    of = f" of {total}" if total is not None else ""
                    timeout = isinstance(
                        e, (urllib3.exceptions.ReadTimeoutError, requests.Timeout, TimeoutError)
                    )
                    if timeout:
                        raise _Transient(
                            f"stalled: no bytes in {s.timeout_s:g} s after {done}{of} bytes",
                            stalled=True,
                        ) from None
                    raise _Transient(
                        f"connection lost after {done}{of} bytes ({type(e).__name__})"
                    ) from None
                if not chunk:
                    break
                f.write(chunk)
                done += len(chunk)
                window_bytes += len(chunk)
                bar.update(done, total)
                if done > s.max_file_bytes:
                    raise NotWeightsError(
                        f"{url}: more than {s.max_file_bytes} bytes "
                        "(SSLD_ZOO_MAX_FILE_BYTES); nothing was cached"
                    )
                if time.monotonic() - window_start >= s.timeout_s:
                    if window_bytes < STALL_BYTES:
                        raise _Transient(
                            f"stalled: under {STALL_BYTES} bytes in "
                            f"{s.timeout_s:g} s after {done} bytes",
                            stalled=True,
                        )
                    window_start, window_bytes = time.monotonic(), 0
    if total is not None and done != total:
        if done > total:
            part.unlink(missing_ok=True)
        raise _Transient(f"connection closed after {done} of {total} bytes")


def _fetch_http(url: str, dest: Path, s: Settings, deadline: Deadline, show: bool) -> Path:
    import requests

    part, meta = part_paths(dest)
    validator = None
    if part.exists():
        try:
            state = json.loads(meta.read_text())
        except (OSError, ValueError):
            state = {}
        if not isinstance(state, dict) or state.get("url") != url:
            part.unlink()  # bytes of unknown or other origin (another mirror): not spliced
        else:
            validator = state.get("validator")
    failures = stalls = attempts = 0
    with requests.Session() as session, _Bar(dest.name, show) as bar:
        session.max_redirects = MAX_REDIRECTS
        session.headers.update({"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})
        while True:
            attempts += 1
            before = part.stat().st_size if part.exists() else 0
            try:
                _http_attempt(session, url, part, meta, validator, s, deadline, bar)
                return part
            except _Transient as e:
                error = e
            after = part.stat().st_size if part.exists() else 0
            progressed = after - before >= STALL_BYTES
            failures = 0 if progressed else failures + 1
            stalls = 0 if progressed else stalls + error.stalled
            if stalls > s.stall_retries:
                raise DownloadError(
                    f"{url}: gave up after {attempts} attempts: {error} (stalled "
                    f"{stalls} times in a row; SSLD_ZOO_DOWNLOAD_STALL_RETRIES="
                    f"{s.stall_retries}, SSLD_ZOO_DOWNLOAD_TIMEOUT="
                    f"{s.timeout_s:g}); the partial file is kept for a rerun"
                )
            if failures > s.retries or attempts >= MAX_ATTEMPTS:
                raise DownloadError(f"{url}: gave up after {attempts} attempts: {error}")
            try:
                validator = json.loads(meta.read_text()).get("validator")
            except (OSError, ValueError, AttributeError):
                validator = None
            delay = _backoff(failures)
            if error.retry_after:
                delay = min(max(delay, error.retry_after), MAX_BACKOFF_S)
            deadline.sleep(delay, url)


# --------------------------------------------------------------------------- Google Drive


def gdown_source(url: str) -> str:
    """The URL handed to gdown: the fragment dropped, usercontent links turned into the
    ``uc?id=`` form gdown understands (it handles Drive's confirmation pages)."""
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qs(parts.query)
    if parts.hostname == "drive.usercontent.google.com" and query.get("id"):
        return f"https://drive.google.com/uc?id={query['id'][0]}"
    return urllib.parse.urlunsplit(parts._replace(fragment=""))


def _fetch_gdrive(url: str, dest: Path, s: Settings, deadline: Deadline, show: bool) -> Path:
    """Download a Google Drive file through gdown into a staging folder and return it.
    gdown's own retries resume its partial file; the deadline cancels it."""
    import gdown
    import requests

    staging = dest.parent / ".gdown"
    staging.mkdir(parents=True, exist_ok=True)
    out = staging / dest.name
    cancel = threading.Event()
    timer = threading.Timer(deadline.remaining(), cancel.set)
    timer.daemon = True

    def progress(done: int, total: int | None) -> None:
        bar.update(done, total)
        if done > s.max_file_bytes or (total or 0) > s.max_file_bytes:
            raise NotWeightsError(
                f"{url}: more than {s.max_file_bytes} bytes "
                "(SSLD_ZOO_MAX_FILE_BYTES); nothing was cached"
            )

    with _Bar(dest.name, show) as bar:
        timer.start()
        try:
            # No cookie file: nothing is written outside the cache.
            gdown.download(
                gdown_source(url),
                output=str(out),
                quiet=True,
                resume=True,
                use_cookies=False,
                timeout=(s.timeout_s, s.timeout_s),
                retries=s.retries,
                cancel=cancel,
                progress=progress,
                user_agent=USER_AGENT,
            )
        except gdown.exceptions.DownloadCancelled:
            raise DeadlineError(
                f"{url}: not finished within {deadline.seconds:g} s "
                "(SSLD_ZOO_DOWNLOAD_DEADLINE); nothing was cached"
            ) from None
        except requests.HTTPError as e:
            status = e.response.status_code if e.response is not None else 0
            raise HTTPStatusError(url, status, getattr(e.response, "reason", "") or "") from None
        except (gdown.exceptions.DownloadError, requests.RequestException, OSError) as e:
            detail = " ".join(str(e).split())  # gdown's messages span lines
            raise DownloadError(f"{url}: {type(e).__name__}: {detail}") from None
        finally:
            timer.cancel()
    if not out.is_file():
        raise DownloadError(f"{url}: gdown reported success but wrote no file at {out}")
    return out
