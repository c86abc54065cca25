"""Downloads against a real HTTP server on 127.0.0.1 that misbehaves (``server.py``): resume,
Range ignored, mirrors, retries and their bounds, HTML served with 200, short bodies, early
closes, trickles and the deadline, redirects, size caps, concurrent downloads, checksums,
offline mode, SSLD_ZOO_MIRROR, Google Drive through gdown.

The weights here are test payloads: ``validate`` accepts exactly PAYLOAD-shaped bytes, so
what matters is the transport and the cache protocol; ``test_trust.py`` does the same with
real ``.pdparams`` through ``ssld_zoo.load``. Every test asserts the error class, its message,
and what the cache holds afterwards.
"""

from __future__ import annotations

import functools
import io
import json
import socket
import threading
import time

import pytest

from ssld_zoo.weights import cache, fetch, trust
from ssld_zoo.weights.download import obtain
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
from ssld_zoo.weights.fileops import locked
from ssld_zoo.weights.urls import file_name_for
from tests.weights.server import HTML, cache_listing, run_concurrently, sha

PAYLOAD = b"WGT" + bytes(range(256)) * 4096 + b"tail"  # 1 MiB + 7 bytes, not chunk aligned
ARCH = "test-arch"


def _validate(path, name):
    data = path.read_bytes()
    if not (data.startswith(b"WGT") and data.endswith(b"tail")):
        raise WeightsFileError(f"{path}: not a test weights file")
    return len(data)


def get(urls, sha256=None, progress=False):
    path, size, digest = obtain(urls, _validate, arch=ARCH, sha256=sha256, progress=progress)
    assert digest == sha(path.read_bytes()) and size == path.stat().st_size
    return path


def downloads(home) -> list[str]:
    return cache_listing(home)["downloads"]


# --- the ordinary path ------------------------------------------------------------------------


def test_download_caches_validates_and_records(server, home):
    base, served = server
    served.files["/w/Tiny.pdparams"] = PAYLOAD
    path = get([base + "/w/Tiny.pdparams"], sha(PAYLOAD))
    assert path == home / "downloads" / "Tiny.pdparams"
    assert path == cache.cached_path(base + "/w/Tiny.pdparams")
    assert path.read_bytes() == PAYLOAD
    assert downloads(home) == ["Tiny.pdparams"]  # no .part, no .part.json left
    rec = trust.read_records()["Tiny.pdparams"]
    assert rec["sha256"] == sha(PAYLOAD) and rec["arch"] == ARCH
    assert len(served.hits("/w/Tiny.pdparams")) == 1


def test_cached_file_needs_no_request(server):
    base, served = server
    served.files["/Tiny.pdparams"] = PAYLOAD
    first = get([base + "/Tiny.pdparams"])
    served.files.clear()  # the server would now 404
    assert get([base + "/Tiny.pdparams"]) == first
    assert len(served.requests) == 1


def test_resume_after_dropped_connection(server, home):
    base, served = server
    served.files["/Tiny.pdparams"] = PAYLOAD
    served.drop_once["/Tiny.pdparams"] = 300_000
    assert get([base + "/Tiny.pdparams"], sha(PAYLOAD)).read_bytes() == PAYLOAD
    first, second = served.hits("/Tiny.pdparams")
    assert "Range" not in first
    assert second["Range"] == "bytes=300000-"
    assert second["If-Range"] == f'"{sha(PAYLOAD)[:16]}"'  # resume only the same version
    assert downloads(home) == ["Tiny.pdparams"]


def test_every_response_cut_short_still_completes_by_resuming(server):
    base, served = server
    served.files["/Tiny.pdparams"] = PAYLOAD
    served.drop_always["/Tiny.pdparams"] = 200_000  # each body stops after 200 kB
    assert get([base + "/Tiny.pdparams"], sha(PAYLOAD)).read_bytes() == PAYLOAD
    assert len(served.hits("/Tiny.pdparams")) == 6


def test_server_ignoring_range_restarts_from_zero(server):
    base, served = server
    served.files["/Tiny.pdparams"] = PAYLOAD
    served.drop_once["/Tiny.pdparams"] = 100_000
    served.ignore_range.add("/Tiny.pdparams")  # answers 200 + whole body to a Range request
    assert get([base + "/Tiny.pdparams"], sha(PAYLOAD)).read_bytes() == PAYLOAD
    assert [h.get("Range") for h in served.hits("/Tiny.pdparams")] == [None, "bytes=100000-"]


def test_leftover_part_of_the_same_url_is_resumed(server, home):
    base, served = server
    url = base + "/Tiny.pdparams"
    served.files["/Tiny.pdparams"] = PAYLOAD
    (home / "downloads").mkdir(parents=True)
    (home / "downloads" / "Tiny.pdparams.part").write_bytes(PAYLOAD[:5000])
    (home / "downloads" / "Tiny.pdparams.part.json").write_text(json.dumps({"url": url}))
    assert get([url], sha(PAYLOAD)).read_bytes() == PAYLOAD
    assert served.hits("/Tiny.pdparams")[0]["Range"] == "bytes=5000-"


def test_leftover_part_of_another_url_is_discarded(server, home):
    base, served = server
    served.files["/Tiny.pdparams"] = PAYLOAD
    (home / "downloads").mkdir(parents=True)
    (home / "downloads" / "Tiny.pdparams.part").write_bytes(b"x" * 5000)
    (home / "downloads" / "Tiny.pdparams.part.json").write_text(
        json.dumps({"url": "http://elsewhere.invalid/Tiny.pdparams"})
    )
    assert get([base + "/Tiny.pdparams"]).read_bytes() == PAYLOAD
    assert "Range" not in served.hits("/Tiny.pdparams")[0]


# --- failures and their bounds ------------------------------------------------------------------


def test_404_names_url_and_falls_back_to_mirror(server, home):
    base, served = server
    served.files["/mirror/Tiny.pdparams"] = PAYLOAD
    with pytest.raises(HTTPStatusError) as e:
        get([base + "/gone/Tiny.pdparams"])
    msg = str(e.value)
    assert f"{base}/gone/Tiny.pdparams: HTTP 404 Not Found" in msg and "\n" not in msg
    assert len(served.hits("/gone/Tiny.pdparams")) == 1  # a 404 is not retried
    assert f"save {base}/gone/Tiny.pdparams as {home / 'downloads' / 'Tiny.pdparams'}" in msg
    assert cache_listing(home)["downloads"] == [] and trust.read_records() == {}
    path = get([base + "/gone/Tiny.pdparams", base + "/mirror/Tiny.pdparams"])
    assert path.read_bytes() == PAYLOAD


def test_no_network_error_says_where_to_put_the_file(home):
    with socket.socket() as s:  # a port nothing listens on: connection refused
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/Tiny.pdparams"
    with pytest.raises(DownloadError) as e:
        get([url], "a" * 64)
    msg = str(e.value)
    assert f"{url}: gave up after 5 attempts: ConnectionError" in msg and "\n" not in msg
    assert str(home / "downloads" / "Tiny.pdparams") in msg and "a" * 64 in msg
    assert "SSLD_ZOO_MIRROR" in msg


def test_transient_errors_are_retried_then_bounded(server):
    base, served = server
    served.files["/Tiny.pdparams"] = PAYLOAD
    served.fail_with["/Tiny.pdparams"] = [503, 502]
    assert get([base + "/Tiny.pdparams"]).read_bytes() == PAYLOAD
    assert len(served.hits("/Tiny.pdparams")) == 3

    served.files["/Down.pdparams"] = PAYLOAD
    served.fail_with["/Down.pdparams"] = [503] * 100
    with pytest.raises(DownloadError, match="gave up after 5 attempts: HTTP 503"):
        get([base + "/Down.pdparams"])
    assert len(served.hits("/Down.pdparams")) == 5


def test_retry_after_is_honoured_but_capped(server, monkeypatch):
    base, served = server
    monkeypatch.setattr(fetch, "MAX_BACKOFF_S", 0.2)
    served.files["/Tiny.pdparams"] = PAYLOAD
    served.fail_with["/Tiny.pdparams"] = [429, 503]
    served.retry_after["/Tiny.pdparams"] = "86400"  # a day: must not be waited
    start = time.monotonic()
    assert get([base + "/Tiny.pdparams"]).read_bytes() == PAYLOAD
    assert 0.4 <= time.monotonic() - start < 3


def test_connection_that_never_sends_a_byte_gives_up(server, home, monkeypatch):
    base, served = server
    monkeypatch.setenv("SSLD_ZOO_DOWNLOAD_RETRIES", "1")
    served.files["/Tiny.pdparams"] = PAYLOAD
    served.drop_always["/Tiny.pdparams"] = 0  # headers, then the connection closes
    with pytest.raises(DownloadError) as e:
        get([base + "/Tiny.pdparams"])
    assert (
        f"{base}/Tiny.pdparams: gave up after 2 attempts: connection lost after 0 of "
        f"{len(PAYLOAD)} bytes (ProtocolError)" in str(e.value)
    )
    assert len(served.hits("/Tiny.pdparams")) == 2
    assert trust.read_records() == {} and "Tiny.pdparams" not in downloads(home)


def test_trickling_server_hits_the_deadline(server, home, monkeypatch):
    base, served = server
    monkeypatch.setenv("SSLD_ZOO_DOWNLOAD_DEADLINE", "1.5")
    served.files["/Tiny.pdparams"] = PAYLOAD
    served.trickle["/Tiny.pdparams"] = 0.1  # a byte every 0.1 s: every read succeeds
    start = time.monotonic()
    with pytest.raises(DeadlineError) as e:
        get([base + "/Tiny.pdparams"])
    assert 1.4 < time.monotonic() - start < 4
    assert str(e.value).startswith(
        f"could not get Tiny.pdparams: {base}/Tiny.pdparams: not "
        "finished within 1.5 s (SSLD_ZOO_DOWNLOAD_DEADLINE); "
        "nothing was cached"
    )
    # The bytes so far stay as a resumable partial file; nothing is trusted.
    assert downloads(home) == ["Tiny.pdparams.part", "Tiny.pdparams.part.json"]
    assert trust.read_records() == {}


def test_stalled_transfer_is_retried_then_given_up(server, monkeypatch):
    base, served = server
    monkeypatch.setenv("SSLD_ZOO_DOWNLOAD_TIMEOUT", "0.4")
    monkeypatch.setenv("SSLD_ZOO_DOWNLOAD_RETRIES", "1")
    served.files["/Tiny.pdparams"] = PAYLOAD
    served.trickle["/Tiny.pdparams"] = 0.05  # ~8 bytes per 0.4 s: under the stall floor
    with pytest.raises(
        DownloadError,
        match=r"gave up after 2 attempts: stalled: under 1024 "
        r"bytes in 0.4 s",
    ):
        get([base + "/Tiny.pdparams"])


def test_html_page_with_200_is_refused_at_once_and_nothing_recorded(server, home):
    base, served = server
    served.html.add("/Tiny.pdparams")  # a login page, 200, Content-Type text/html
    with pytest.raises(NotWeightsError) as e:
        get([base + "/Tiny.pdparams"])
    assert (
        f"{base}/Tiny.pdparams: the server answered with a web page (Content-Type "
        "'text/html; charset=utf-8'), not the weights file"
    ) in str(e.value)
    assert len(served.hits("/Tiny.pdparams")) == 1  # not retried
    assert cache_listing(home) == {"downloads": [], "converted": [], "quarantine": []}
    assert trust.read_records() == {}
    served.html.clear()  # the real file later is accepted: no poisoned record refuses it
    served.files["/Tiny.pdparams"] = PAYLOAD
    assert get([base + "/Tiny.pdparams"]).read_bytes() == PAYLOAD


def test_html_sent_as_a_binary_is_refused_by_validation(server, home):
    base, served = server
    served.files["/Tiny.pdparams"] = HTML  # Content-Type application/octet-stream
    with pytest.raises(NotWeightsError) as e:
        get([base + "/Tiny.pdparams"])
    msg = str(e.value)
    assert f"{base}/Tiny.pdparams: the downloaded file is not valid weights for {ARCH}" in msg
    assert "(it starts with '<!DOCTYPE html>" in msg and "nothing was cached" in msg
    assert cache_listing(home)["downloads"] == [] and trust.read_records() == {}


def test_early_close_without_length_is_caught_by_validation(server, home):
    base, served = server
    served.files["/Tiny.pdparams"] = PAYLOAD
    served.no_length.add("/Tiny.pdparams")  # the end of the body is the end of the connection
    served.drop_once["/Tiny.pdparams"] = 500_000
    with pytest.raises(NotWeightsError, match="not valid weights"):
        get([base + "/Tiny.pdparams"])
    assert cache_listing(home)["downloads"] == [] and trust.read_records() == {}
    assert get([base + "/Tiny.pdparams"]).read_bytes() == PAYLOAD


def test_empty_body_is_refused(server, home):
    base, served = server
    served.files["/Tiny.pdparams"] = b""
    with pytest.raises(NotWeightsError, match="the server sent an empty body"):
        get([base + "/Tiny.pdparams"])
    assert cache_listing(home)["downloads"] == []


def test_size_cap_before_and_while_reading(server, home, monkeypatch):
    base, served = server
    monkeypatch.setenv("SSLD_ZOO_MAX_FILE_BYTES", "1000")
    served.files["/Big.pdparams"] = PAYLOAD
    with pytest.raises(
        NotWeightsError,
        match=r"announces 1048583 bytes, over the "
        r"SSLD_ZOO_MAX_FILE_BYTES limit of 1000",
    ):
        get([base + "/Big.pdparams"])
    served.no_length.add("/Big.pdparams")  # no announced size: stopped while reading
    with pytest.raises(NotWeightsError, match=r"more than 1000 bytes \(SSLD_ZOO_MAX_FILE_BYTES\)"):
        get([base + "/Big.pdparams"])
    assert cache_listing(home)["downloads"] == []


def test_redirects_are_followed_and_bounded(server, home):
    base, served = server
    served.files["/real/Tiny.pdparams"] = PAYLOAD
    served.redirect["/old/Tiny.pdparams"] = "/real/Tiny.pdparams"
    assert get([base + "/old/Tiny.pdparams"]).read_bytes() == PAYLOAD
    served.redirect["/loop/Loop.pdparams"] = "/loop/Loop.pdparams"
    with pytest.raises(DownloadError, match=r"loop/Loop.pdparams: more than 5 redirects"):
        get([base + "/loop/Loop.pdparams"])
    assert len(served.hits("/loop/Loop.pdparams")) == 6  # the first request and 5 redirects
    assert downloads(home) == ["Tiny.pdparams"]


def test_concurrent_downloads_of_one_file_fetch_it_once(server, home):
    base, served = server
    served.files["/Tiny.pdparams"] = PAYLOAD
    served.delay["/Tiny.pdparams"] = 0.3  # all threads are waiting while the first fetches
    results, errors = run_concurrently(lambda: get([base + "/Tiny.pdparams"], sha(PAYLOAD)), 6, 30)
    assert errors == [] and len(results) == 6 and len(set(results)) == 1
    assert len(served.hits("/Tiny.pdparams")) == 1
    assert downloads(home) == ["Tiny.pdparams"]


def test_waiting_for_another_process_is_bounded_by_the_deadline(server, home, monkeypatch):
    base, served = server
    monkeypatch.setenv("SSLD_ZOO_DOWNLOAD_DEADLINE", "0.5")
    served.files["/Tiny.pdparams"] = PAYLOAD
    held, release = threading.Event(), threading.Event()

    def other_process():
        with locked(home / "downloads" / "Tiny.pdparams"):
            held.set()
            release.wait(10)

    t = threading.Thread(target=other_process)
    t.start()
    held.wait(5)
    try:
        with pytest.raises(
            DeadlineError,
            match=r"Tiny.pdparams: waited 0\.\d s for .*"
            r"\.Tiny\.pdparams\.lock",
        ):
            get([base + "/Tiny.pdparams"])
    finally:
        release.set()
        t.join()
    assert served.requests == []


# --- checksums ---------------------------------------------------------------------------------


def test_checksum_mismatch_leaves_nothing(server, home):
    base, served = server
    url = base + "/Tiny.pdparams"
    served.files["/Tiny.pdparams"] = PAYLOAD
    served.drop_once["/Tiny.pdparams"] = 1000  # a .part exists mid-way
    wrong = "0" * 64
    with pytest.raises(ChecksumError) as e:
        get([url], wrong)
    msg = str(e.value)
    assert (
        f"sha256 mismatch for {url}: expected {wrong} (published checksum), got "
        f"{sha(PAYLOAD)}; nothing was cached" in msg
    )
    assert downloads(home) == [] and trust.read_records() == {}


def test_published_prefix_in_a_torch_hub_file_name_is_checked(server, home):
    base, served = server
    good = f"/m/model-{sha(PAYLOAD)[:8]}.pth"
    bad = "/m/model-0123abcd.pth"
    served.files[good] = served.files[bad] = PAYLOAD
    assert get([base + good]).read_bytes() == PAYLOAD
    with pytest.raises(
        ChecksumError,
        match=r"expected 0123abcd \(the sha256 prefix in the file "
        r"name model-0123abcd.pth\)",
    ):
        get([base + bad])
    assert downloads(home) == [good.rsplit("/", 1)[1]]


def test_recorded_hash_repairs_tampering_and_refuses_a_changed_upstream(server, home):
    base, served = server
    url = base + "/Tiny.pdparams"
    served.files["/Tiny.pdparams"] = PAYLOAD
    path = get([url])  # no published hash: recorded once it validated
    path.write_bytes(PAYLOAD[:-5] + b"Xtail")  # the cached copy changes (disk, hand edit)
    with pytest.warns(
        CacheRepairWarning,
        match=r"Tiny.pdparams: damaged cache entry \(sha256 "
        r"[0-9a-f]{64}, expected [0-9a-f]{64} \(recorded",
    ):
        assert get([url]).read_bytes() == PAYLOAD  # quarantined and fetched again
    assert len(served.requests) == 2 and len(cache_listing(home)["quarantine"]) == 1
    # Upstream now serves other bytes: refused against the record, with the way out.
    path.unlink()
    served.files["/Tiny.pdparams"] = PAYLOAD[:-4] + b"!tail"
    with pytest.raises(ChecksumError) as e:
        get([url])
    assert "ssld-zoo cache forget Tiny.pdparams" in str(e.value)
    assert downloads(home) == []
    cache.forget_hashes("Tiny.pdparams")
    assert get([url]).read_bytes().endswith(b"!tail")


def test_published_hash_applies_to_first_url_mirrors_use_records(server):
    base, served = server
    served.files["/a/First.pdparams"] = PAYLOAD
    served.files["/b/Mirror.pdparams"] = b"WGT mirror tail"
    # The published hash (of First.pdparams) does not apply to the mirror's other file...
    path = get([base + "/a/Missing.pdparams", base + "/b/Mirror.pdparams"], "1" * 64)
    assert path.name == "Mirror.pdparams"
    assert trust.recorded_sha256("Mirror.pdparams") == sha(b"WGT mirror tail")


def test_published_hash_must_be_hex():
    with pytest.raises(ValueError, match="64 hexadecimal"):
        get(["http://127.0.0.1:9/Tiny.pdparams"], "not-a-hash")


# --- offline, mirrors -------------------------------------------------------------------------


def test_offline_makes_no_request_and_says_where_to_put_the_file(server, home, monkeypatch):
    base, served = server
    urls = [base + "/Tiny.pdparams", base + "/mirror/Tiny.pdparams"]
    served.files["/Tiny.pdparams"] = PAYLOAD
    monkeypatch.setenv("SSLD_ZOO_OFFLINE", "1")
    with pytest.raises(OfflineError) as e:
        get(urls, sha(PAYLOAD))
    msg = str(e.value)
    assert msg.startswith("SSLD_ZOO_OFFLINE is set and Tiny.pdparams is not cached")
    assert urls[0] in msg and sha(PAYLOAD) in msg and "\n" not in msg
    assert str(home / "downloads" / "Tiny.pdparams") in msg
    assert served.requests == []
    # Following the message works: the dropped-in file is used (validated, recorded), offline.
    (home / "downloads").mkdir(parents=True)
    (home / "downloads" / "Tiny.pdparams").write_bytes(PAYLOAD)
    assert get(urls, sha(PAYLOAD)).read_bytes() == PAYLOAD
    assert served.requests == [] and trust.recorded_sha256("Tiny.pdparams") == sha(PAYLOAD)


def test_mirror_server_replaces_every_url(server, home, monkeypatch):
    base, served = server
    served.files["/internal/weights/Tiny.pdparams"] = PAYLOAD
    monkeypatch.setenv("SSLD_ZOO_MIRROR", base + "/internal/weights/")
    path = get(
        ["https://paddle-imagenet-models-name.bj.bcebos.com/dygraph/Tiny.pdparams"], sha(PAYLOAD)
    )  # the published hash still applies on the mirror
    assert path.read_bytes() == PAYLOAD
    assert [p for p, _ in served.requests] == ["/internal/weights/Tiny.pdparams"]
    assert trust.read_records()["Tiny.pdparams"]["url"] == base + "/internal/weights/Tiny.pdparams"


def test_mirror_folder_is_copied_from(tmp_path, home, monkeypatch):
    folder = tmp_path / "nfs weights"
    folder.mkdir()
    (folder / "Tiny.pdparams").write_bytes(PAYLOAD)
    monkeypatch.setenv("SSLD_ZOO_MIRROR", folder.as_uri())  # file://... (a plain path works too)
    assert get(["https://example.invalid/x/Tiny.pdparams"]).read_bytes() == PAYLOAD
    monkeypatch.setenv("SSLD_ZOO_MIRROR", str(folder))
    with pytest.raises(
        DownloadError,
        match=r"Other.pdparams: not in the mirror folder "
        r"\(SSLD_ZOO_MIRROR\)",
    ):
        get(["https://example.invalid/x/Other.pdparams"])
    (folder / "Junk.pdparams").write_bytes(HTML)
    with pytest.raises(NotWeightsError, match="not valid weights"):
        get(["https://example.invalid/x/Junk.pdparams"])
    assert downloads(home) == ["Tiny.pdparams"]


def test_offline_still_uses_a_mirror_folder(tmp_path, home, monkeypatch):
    (tmp_path / "Tiny.pdparams").write_bytes(PAYLOAD)
    monkeypatch.setenv("SSLD_ZOO_OFFLINE", "1")
    monkeypatch.setenv("SSLD_ZOO_MIRROR", str(tmp_path))
    assert get(["https://example.invalid/Tiny.pdparams"]).read_bytes() == PAYLOAD
    monkeypatch.setenv("SSLD_ZOO_MIRROR", "http://127.0.0.1:9/")  # a server is network
    with pytest.raises(OfflineError):
        get(["https://example.invalid/Other.pdparams"])


def test_a_redirect_from_https_to_http_is_refused():
    class Resp:  # what requests returns after following such a redirect
        history, url, status_code, headers, reason = [object()], "http://x.org/a.pth", 200, {}, ""

    with pytest.raises(
        DownloadError,
        match=r"^https://x.org/a.pth: redirected to "
        r"http://x.org/a.pth, from https to plain http",
    ):
        fetch._check_response("https://x.org/a.pth", Resp(), 0, None)


def test_malformed_settings_are_one_line_errors(monkeypatch):
    monkeypatch.setenv("SSLD_ZOO_DOWNLOAD_DEADLINE", "soon")
    with pytest.raises(
        ValueError,
        match=r"SSLD_ZOO_DOWNLOAD_DEADLINE='soon': expected a "
        r"float >= 0.01",
    ):
        get(["http://127.0.0.1:9/Tiny.pdparams"])


# --- progress, names, Google Drive -------------------------------------------------------------


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("progress", [True, False])
def test_progress_bar_only_when_asked_and_on_a_terminal(server, monkeypatch, progress):
    base, served = server
    served.files["/Tiny.pdparams"] = PAYLOAD
    served.drop_once["/Tiny.pdparams"] = 50_000  # the bar survives a resume
    term = FakeTerminal()
    monkeypatch.setattr("sys.stderr", term)
    get([base + "/Tiny.pdparams"], progress=progress)
    if progress:
        assert "Tiny.pdparams" in term.getvalue() and "1.0/1.0 MB" in term.getvalue()
    else:
        assert term.getvalue() == ""


def test_file_names_from_urls():
    assert file_name_for("https://x.org/a/B_c-1.pdparams?x=1") == "B_c-1.pdparams"
    assert file_name_for("https://drive.google.com/uc?id=XYZ#M.pdparams") == "M.pdparams"
    assert (
        file_name_for("https://drive.usercontent.google.com/download?id=XYZ&export=download#M.pth")
        == "M.pth"
    )
    for bad in (
        "https://drive.google.com/uc?id=XYZ",
        "https://x.org/",
        "https://x.org/..",
        "https://x.org/%2e%2e%2fetc",
        "ftp://x.org/a.pdparams",
        "https://drive.google.com/uc?id=1#../../evil",
        "https://x.org/a.pdparams.lock",
    ):
        with pytest.raises(ValueError):
            file_name_for(bad)


def test_google_drive_goes_through_gdown(server, home, monkeypatch):
    """The real gdown fetches the file; only the host is redirected to the local server."""
    import gdown

    base, served = server
    served.files["/uc"] = PAYLOAD
    real, seen = gdown.download, []

    @functools.wraps(real)
    def local_gdown(url, *args, **kwargs):
        assert kwargs["use_cookies"] is False and kwargs["retries"] == 4
        assert kwargs["cancel"] is not None  # the deadline cancels gdown
        seen.append(url)
        return real(url.replace("https://drive.google.com", base), *args, **kwargs)

    monkeypatch.setattr(gdown, "download", local_gdown)
    url = "https://drive.google.com/uc?id=FILE123#Drive.pdparams"
    path = get([url], sha(PAYLOAD))
    assert seen == ["https://drive.google.com/uc?id=FILE123"]
    assert path == home / "downloads" / "Drive.pdparams" and path.read_bytes() == PAYLOAD
    assert len(served.hits("/uc")) == 1
    assert not any((home / "downloads" / ".gdown").iterdir())  # staging emptied
    # A 404 through gdown is the same one-line error, and the next mirror is tried.
    served.files["/mirror/Other.pdparams"] = b"WGT other tail"
    missing = "https://drive.google.com/missing?id=NOPE#Other.pdparams"
    with pytest.raises(HTTPStatusError, match="404"):
        get([missing])
    assert get([missing, base + "/mirror/Other.pdparams"]).read_bytes() == b"WGT other tail"


def test_google_drive_download_is_cancelled_at_the_deadline(server, monkeypatch):
    import gdown

    base, served = server
    monkeypatch.setenv("SSLD_ZOO_DOWNLOAD_DEADLINE", "1")
    served.files["/uc"] = PAYLOAD
    served.trickle["/uc"] = 0.1
    real = gdown.download
    monkeypatch.setattr(
        gdown,
        "download",
        functools.wraps(real)(
            lambda url, *a, **k: real(url.replace("https://drive.google.com", base), *a, **k)
        ),
    )
    start = time.monotonic()
    with pytest.raises(DeadlineError, match=r"not finished within 1 s"):
        get(["https://drive.google.com/uc?id=SLOW#Slow.pdparams"])
    assert time.monotonic() - start < 4


def test_usercontent_links_are_handed_to_gdown_as_uc():
    assert (
        fetch.gdown_source(
            "https://drive.usercontent.google.com/download?id=AB-c_1&export=download#X.pdparams"
        )
        == "https://drive.google.com/uc?id=AB-c_1"
    )


# --- the stall policy (issue 25) ---------------------------------------------------------------


def test_a_stalling_server_is_given_up_after_the_stall_retries_resuming_each_time(
    server, home, monkeypatch
):
    """A server that sends a few bytes and then nothing: retried SSLD_ZOO_DOWNLOAD_STALL_RETRIES
    times (not the 4 retries of dropped connections), each retry resuming the partial file."""
    base, served = server
    monkeypatch.setenv("SSLD_ZOO_DOWNLOAD_TIMEOUT", "0.3")
    monkeypatch.setenv("SSLD_ZOO_DOWNLOAD_RETRIES", "10")
    monkeypatch.setenv("SSLD_ZOO_DOWNLOAD_STALL_RETRIES", "2")
    monkeypatch.setattr(fetch, "MAX_BACKOFF_S", 0.05)
    served.files["/Tiny.pdparams"] = PAYLOAD
    served.stall_after["/Tiny.pdparams"] = (300, 1.0)  # under STALL_BYTES: no progress
    with pytest.raises(
        DownloadError,
        match=r"gave up after 3 attempts: stalled: .*\(stalled 3 "
        r"times in a row; SSLD_ZOO_DOWNLOAD_STALL_RETRIES=2",
    ):
        get([base + "/Tiny.pdparams"])
    hits = served.hits("/Tiny.pdparams")
    assert [h.get("Range") for h in hits] == [None, "bytes=300-", "bytes=600-"]
    part = home / "downloads" / "Tiny.pdparams.part"
    assert part.read_bytes() == PAYLOAD[:900]  # kept for a rerun, nothing trusted
    assert trust.read_records() == {}


def test_a_server_that_stalls_after_progress_is_resumed_to_the_end(server, monkeypatch):
    """Each attempt that brings STALL_BYTES or more resets the stall count: a server that
    stalls after every 300 KB still delivers the whole file, resumed across attempts."""
    base, served = server
    monkeypatch.setenv("SSLD_ZOO_DOWNLOAD_TIMEOUT", "0.3")
    monkeypatch.setenv("SSLD_ZOO_DOWNLOAD_STALL_RETRIES", "0")
    monkeypatch.setattr(fetch, "MAX_BACKOFF_S", 0.05)
    served.files["/Tiny.pdparams"] = PAYLOAD
    served.stall_after["/Tiny.pdparams"] = (300_000, 1.0)
    assert get([base + "/Tiny.pdparams"]).read_bytes() == PAYLOAD
    assert len(served.hits("/Tiny.pdparams")) == 4


def test_the_default_stall_policy_gives_up_in_about_a_minute(monkeypatch):
    from ssld_zoo.weights.settings import settings

    for name in ("SSLD_ZOO_DOWNLOAD_TIMEOUT", "SSLD_ZOO_DOWNLOAD_STALL_RETRIES"):
        monkeypatch.delenv(name, raising=False)
    # the shipped backoff (the weights tests shorten it)
    monkeypatch.setattr(fetch, "BACKOFF_S", 0.5)
    monkeypatch.setattr(fetch, "MAX_BACKOFF_S", 8.0)
    s = settings()
    assert (s.timeout_s, s.stall_retries) == (20.0, 2)
    assert fetch.stall_give_up_s(s) == 3 * 20 + 0.5 + 1.0
