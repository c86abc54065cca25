"""hub.download against a real HTTP server on 127.0.0.1: resume, mirrors, checksums, offline,
trust-on-first-use records, Google Drive through gdown, and ``ssld_zoo.load`` end to end."""
from __future__ import annotations

import functools
import hashlib
import io
import http.server
import json
import re
import socket
import threading
from dataclasses import dataclass, field

import pytest
import torch

from ssld_zoo.weights import hub

PAYLOAD = bytes(range(256)) * 4096 + b"tail"  # 1 MiB + 4 bytes, not chunk aligned


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Served:
    """What the test server serves and what it saw."""

    files: dict[str, bytes] = field(default_factory=dict)
    drop_once: dict[str, int] = field(default_factory=dict)    # path -> bytes sent, then close
    fail_with: dict[str, list[int]] = field(default_factory=dict)  # path -> statuses to answer
    ignore_range: set[str] = field(default_factory=set)        # answer 200 to Range requests
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def hits(self, path: str) -> list[dict[str, str]]:
        with self.lock:
            return [h for p, h in self.requests if p == path]


def _handler(served: Served):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # one request per connection: a drop is a clean close

        def log_message(self, *args):  # keep pytest output clean
            pass

        def do_GET(self):
            path = self.path.split("?")[0]
            with served.lock:
                served.requests.append((path, dict(self.headers)))
                statuses = served.fail_with.get(path)
                status = statuses.pop(0) if statuses else None
            if status is not None:
                self.send_error(status)
                return
            data = served.files.get(path)
            if data is None:
                self.send_error(404)
                return
            etag = f'"{sha(data)[:16]}"'
            start = 0
            m = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
            if_range = self.headers.get("If-Range")
            if m and path not in served.ignore_range and if_range in (None, etag):
                start = int(m[1])
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.send_header("ETag", etag)
            self.end_headers()
            with served.lock:
                cut = served.drop_once.pop(path, None)
            if cut is not None:
                self.wfile.write(body[:cut])  # then the connection closes mid-body
                return
            self.wfile.write(body)

    return Handler


@pytest.fixture
def server():
    """A threaded HTTP server on an ephemeral port; yields (base URL, Served)."""
    served = Served()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(served))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", served
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    """A private cache; fast, bounded retries."""
    monkeypatch.setenv("SSLD_ZOO_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SSLD_ZOO_OFFLINE", raising=False)
    monkeypatch.setattr(hub, "BACKOFF_S", 0.01)
    monkeypatch.setattr(hub, "TIMEOUT_S", 20.0)
    return tmp_path / "home"


def downloads_listing(home) -> list[str]:
    d = home / "downloads"
    return sorted(p.name for p in d.iterdir() if not p.name.startswith(".")) if d.exists() else []


def test_download_caches_verifies_and_records(server, home):
    base, served = server
    served.files["/w/Tiny.pdparams"] = PAYLOAD
    path = hub.download([base + "/w/Tiny.pdparams"], sha(PAYLOAD), progress=False)
    assert path == home / "downloads" / "Tiny.pdparams" == hub.cached_path(base + "/w/Tiny.pdparams")
    assert path.read_bytes() == PAYLOAD
    assert downloads_listing(home) == ["Tiny.pdparams"]  # no .part, no .part.json left
    assert hub.recorded_sha256("Tiny.pdparams") == sha(PAYLOAD)
    assert len(served.hits("/w/Tiny.pdparams")) == 1


def test_resume_after_dropped_connection(server, home):
    base, served = server
    served.files["/Tiny.pdparams"] = PAYLOAD
    served.drop_once["/Tiny.pdparams"] = 300_000
    path = hub.download([base + "/Tiny.pdparams"], sha(PAYLOAD), progress=False)
    assert path.read_bytes() == PAYLOAD
    first, second = served.hits("/Tiny.pdparams")
    assert "Range" not in first
    assert second["Range"] == "bytes=300000-"
    assert second["If-Range"] == f'"{sha(PAYLOAD)[:16]}"'  # resume only the same version
    assert downloads_listing(home) == ["Tiny.pdparams"]


def test_server_ignoring_range_restarts_from_zero(server):
    base, served = server
    served.files["/Tiny.pdparams"] = PAYLOAD
    served.drop_once["/Tiny.pdparams"] = 100_000
    served.ignore_range.add("/Tiny.pdparams")  # answers 200 + whole body to a Range request
    path = hub.download([base + "/Tiny.pdparams"], sha(PAYLOAD), progress=False)
    assert path.read_bytes() == PAYLOAD  # not the first 100000 bytes twice
    assert [h.get("Range") for h in served.hits("/Tiny.pdparams")] == [None, "bytes=100000-"]


def test_leftover_part_of_the_same_url_is_resumed(server, home):
    base, served = server
    url = base + "/Tiny.pdparams"
    served.files["/Tiny.pdparams"] = PAYLOAD
    (home / "downloads").mkdir(parents=True)
    (home / "downloads" / "Tiny.pdparams.part").write_bytes(PAYLOAD[:5000])
    (home / "downloads" / "Tiny.pdparams.part.json").write_text(json.dumps({"url": url}))
    assert hub.download([url], sha(PAYLOAD), progress=False).read_bytes() == PAYLOAD
    assert served.hits("/Tiny.pdparams")[0]["Range"] == "bytes=5000-"


def test_leftover_part_of_another_url_is_discarded(server, home):
    base, served = server
    served.files["/Tiny.pdparams"] = PAYLOAD
    (home / "downloads").mkdir(parents=True)
    (home / "downloads" / "Tiny.pdparams.part").write_bytes(b"x" * 5000)
    (home / "downloads" / "Tiny.pdparams.part.json").write_text(
        json.dumps({"url": "http://elsewhere.invalid/Tiny.pdparams"}))
    assert hub.download([base + "/Tiny.pdparams"], progress=False).read_bytes() == PAYLOAD
    assert "Range" not in served.hits("/Tiny.pdparams")[0]


def test_404_names_url_and_falls_back_to_mirror(server, home):
    base, served = server
    served.files["/mirror/Tiny.pdparams"] = PAYLOAD
    with pytest.raises(hub.DownloadError) as e:
        hub.download([base + "/gone/Tiny.pdparams"], progress=False)
    assert f"{base}/gone/Tiny.pdparams: HTTP 404" in str(e.value)
    assert len(served.hits("/gone/Tiny.pdparams")) == 1  # a 404 is not retried
    assert str(home / "downloads" / "Tiny.pdparams") in str(e.value)  # where to drop it
    path = hub.download([base + "/gone/Tiny.pdparams", base + "/mirror/Tiny.pdparams"],
                        progress=False)
    assert path.read_bytes() == PAYLOAD


def test_no_network_error_says_where_to_put_the_file(home):
    with socket.socket() as s:  # a port nothing listens on: connection refused
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/Tiny.pdparams"
    with pytest.raises(hub.DownloadError) as e:
        hub.download([url], "a" * 64, progress=False)
    msg = str(e.value)
    assert f"{url}: gave up after 5 attempts" in msg and "Connection" in msg
    assert str(home / "downloads" / "Tiny.pdparams") in msg and "a" * 64 in msg


def test_transient_errors_are_retried_then_bounded(server):
    base, served = server
    served.files["/Tiny.pdparams"] = PAYLOAD
    served.fail_with["/Tiny.pdparams"] = [503, 502]
    assert hub.download([base + "/Tiny.pdparams"], progress=False).read_bytes() == PAYLOAD
    assert len(served.hits("/Tiny.pdparams")) == 3

    served.files["/Down.pdparams"] = PAYLOAD
    served.fail_with["/Down.pdparams"] = [503] * 100
    with pytest.raises(hub.DownloadError, match="gave up after 5 attempts: HTTP 503"):
        hub.download([base + "/Down.pdparams"], progress=False)
    assert len(served.hits("/Down.pdparams")) == hub.RETRIES + 1


def test_checksum_mismatch_leaves_nothing(server, home):
    base, served = server
    url = base + "/Tiny.pdparams"
    served.files["/Tiny.pdparams"] = PAYLOAD
    served.drop_once["/Tiny.pdparams"] = 1000  # a .part exists mid-way
    wrong = "0" * 64
    with pytest.raises(hub.ChecksumError) as e:
        hub.download([url], wrong, progress=False)
    msg = str(e.value)
    assert url in msg and wrong in msg and sha(PAYLOAD) in msg
    assert downloads_listing(home) == []
    assert hub.recorded_sha256("Tiny.pdparams") is None


def test_offline_makes_no_request_and_says_where_to_put_the_file(server, home, monkeypatch):
    base, served = server
    urls = [base + "/Tiny.pdparams", base + "/mirror/Tiny.pdparams"]
    served.files["/Tiny.pdparams"] = PAYLOAD
    monkeypatch.setenv("SSLD_ZOO_OFFLINE", "1")
    with pytest.raises(hub.OfflineError) as e:
        hub.download(urls, sha(PAYLOAD), progress=False)
    msg = str(e.value)
    assert urls[0] in msg and urls[1] in msg and sha(PAYLOAD) in msg
    assert str(home / "downloads" / "Tiny.pdparams") in msg
    assert served.requests == []
    # Following the message works: the dropped-in file is used, offline.
    (home / "downloads").mkdir(parents=True)
    (home / "downloads" / "Tiny.pdparams").write_bytes(PAYLOAD)
    assert hub.download(urls, sha(PAYLOAD), progress=False).read_bytes() == PAYLOAD
    assert served.requests == []


def test_cached_file_needs_no_request(server):
    base, served = server
    served.files["/Tiny.pdparams"] = PAYLOAD
    url = base + "/Tiny.pdparams"
    first = hub.download([url], progress=False)
    served.files.clear()  # the server would now 404
    assert hub.download([url], progress=False) == first
    assert len(served.requests) == 1


def test_recorded_hash_detects_tampering_and_changed_upstream(server, home):
    base, served = server
    url = base + "/Tiny.pdparams"
    served.files["/Tiny.pdparams"] = PAYLOAD
    path = hub.download([url], progress=False)  # no published hash: recorded
    record = json.loads((home / "sha256.json").read_text())["files"]["Tiny.pdparams"]
    assert record["sha256"] == sha(PAYLOAD) and record["url"] == url
    path.write_bytes(PAYLOAD[:-1] + b"X")
    with pytest.raises(hub.ChecksumError, match="cache clear Tiny.pdparams") as e:
        hub.download([url], progress=False)
    assert sha(PAYLOAD) in str(e.value)
    assert len(served.requests) == 1
    # Deleted and re-downloaded while upstream changed: checked against the first record.
    path.unlink()
    served.files["/Tiny.pdparams"] = PAYLOAD + b"changed"
    with pytest.raises(hub.ChecksumError):
        hub.download([url], progress=False)
    assert downloads_listing(home) == []


def test_published_hash_applies_to_first_url_mirrors_use_records(server):
    base, served = server
    served.files["/a/First.pdparams"] = PAYLOAD
    served.files["/b/Mirror.pdparams"] = b"mirror bytes"
    # The published hash (of First.pdparams) does not apply to the mirror's other file...
    path = hub.download([base + "/a/Missing.pdparams", base + "/b/Mirror.pdparams"],
                        "1" * 64, progress=False)
    assert path.name == "Mirror.pdparams"
    assert hub.recorded_sha256("Mirror.pdparams") == sha(b"mirror bytes")


def test_former_signature_still_accepted(server):
    base, served = server
    served.files["/Tiny.pdparams"] = PAYLOAD
    with pytest.warns(DeprecationWarning, match=r"download\(urls, sha256\)"):
        path = hub.download((base + "/Tiny.pdparams",), "Tiny.pdparams", sha(PAYLOAD))
    assert path.read_bytes() == PAYLOAD
    with pytest.raises(ValueError, match="64 hexadecimal"):
        hub.download([base + "/Tiny.pdparams"], "not-a-hash", progress=False)


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
    hub.download([base + "/Tiny.pdparams"], progress=progress)
    if progress:
        assert "Tiny.pdparams" in term.getvalue() and "1.0/1.0 MB" in term.getvalue()
    else:
        assert term.getvalue() == ""


def test_file_names_from_urls():
    assert hub.file_name_for("https://x.org/a/B_c-1.pdparams?x=1") == "B_c-1.pdparams"
    assert hub.file_name_for("https://drive.google.com/uc?id=XYZ#M.pdparams") == "M.pdparams"
    assert hub.file_name_for(
        "https://drive.usercontent.google.com/download?id=XYZ&export=download#M.pth") == "M.pth"
    for bad in ("https://drive.google.com/uc?id=XYZ", "https://x.org/", "https://x.org/..",
                "https://x.org/%2e%2e%2fetc", "ftp://x.org/a.pdparams",
                "https://drive.google.com/uc?id=1#../../evil"):
        with pytest.raises(ValueError):
            hub.file_name_for(bad)


def test_google_drive_goes_through_gdown(server, home, monkeypatch):
    """The real gdown fetches the file; only the host is redirected to the local server."""
    import gdown

    base, served = server
    served.files["/uc"] = PAYLOAD
    real, seen = gdown.download, []

    @functools.wraps(real)  # keeps gdown's signature, which hub inspects
    def local_gdown(url, *args, **kwargs):
        assert kwargs["use_cookies"] is False and kwargs["retries"] == hub.RETRIES
        seen.append(url)
        return real(url.replace("https://drive.google.com", base), *args, **kwargs)

    monkeypatch.setattr(gdown, "download", local_gdown)
    url = "https://drive.google.com/uc?id=FILE123#Drive.pdparams"
    path = hub.download([url], sha(PAYLOAD), progress=False)
    assert seen == ["https://drive.google.com/uc?id=FILE123"]
    assert path == home / "downloads" / "Drive.pdparams" and path.read_bytes() == PAYLOAD
    assert len(served.hits("/uc")) == 1
    assert not any((home / "downloads" / ".gdown").iterdir())  # staging emptied
    # A 404 through gdown is the same clear error, and the next mirror is tried.
    served.files["/mirror/Other.pdparams"] = b"other"
    missing = "https://drive.google.com/missing?id=NOPE#Other.pdparams"
    with pytest.raises(hub.HTTPStatusError, match="404"):
        hub._fetch_gdrive(missing, home / "downloads" / "Other.pdparams", False)
    assert hub.download([missing, base + "/mirror/Other.pdparams"],
                        progress=False).read_bytes() == b"other"


def test_usercontent_links_are_handed_to_gdown_as_uc():
    assert hub._gdown_source("https://drive.usercontent.google.com/download?id=AB-c_1"
                             "&export=download#X.pdparams") == "https://drive.google.com/uc?id=AB-c_1"


def test_cache_entries_and_clear(server, home):
    base, served = server
    for name in ("A.pdparams", "B.pdparams"):
        served.files["/" + name] = name.encode() * 100
        hub.download([f"{base}/{name}"], progress=False)
    (home / "downloads" / "C.pdparams.part").write_bytes(b"half")
    entries = {e.name: e for e in hub.cache_entries()}
    assert set(entries) == {"A.pdparams", "B.pdparams", "C.pdparams.part"}
    assert entries["A.pdparams"].kind == "download" and entries["A.pdparams"].size == 1000
    assert entries["A.pdparams"].sha256 == sha(b"A.pdparams" * 100)
    assert entries["C.pdparams.part"].kind == "partial"
    removed = hub.clear_cache("a.*")  # case-insensitive
    assert [e.name for e in removed] == ["A.pdparams"]
    assert downloads_listing(home) == ["B.pdparams", "C.pdparams.part"]
    assert hub.recorded_sha256("A.pdparams") is not None  # kept for trust on first use
    hub.clear_cache(forget_hashes=True)
    assert downloads_listing(home) == [] and hub.recorded_sha256("B.pdparams") is None


@pytest.fixture
def served_weights(server):
    """A resnet18_vd .pdparams (random tensors, Paddle naming) served and registered as a
    temporary weight card; yields (name, source model, URL path, Served)."""
    import ssld_zoo
    from ssld_zoo import registry
    from ssld_zoo.weights.convert import torch_to_paddle
    from ssld_zoo.weights.pdparams import write_pdparams

    base, served = server
    model = ssld_zoo.load("resnet18_vd", pretrained=False)
    torch.manual_seed(0)
    with torch.no_grad():
        for t in model.state_dict().values():
            if t.is_floating_point():  # also the BN statistics, which init leaves at 0 / 1
                t.copy_(torch.rand_like(t) + 0.5)
    tmp = hub.cache_dir().parent / "src.pdparams"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    write_pdparams(torch_to_paddle(model), tmp)
    served.files["/w/HubTest18_pretrained.pdparams"] = tmp.read_bytes()
    name = "resnet18_vd_hubtest"
    registry.register_weights(registry.WeightCard(
        name, "resnet18_vd", (base + "/w/HubTest18_pretrained.pdparams",), top1=None,
        top1_source="test", sha256=sha(tmp.read_bytes())))
    try:
        yield name, model, "/w/HubTest18_pretrained.pdparams", served
    finally:
        registry._WEIGHTS.pop(name, None)


def test_load_end_to_end_downloads_converts_and_caches(served_weights, home):
    import ssld_zoo

    name, src, path, served = served_weights
    model = ssld_zoo.load(name)
    ref = src.state_dict()
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, ref[k], rtol=0, atol=0, msg=k)
    card = model.weight_card
    assert card.name == name and hub.converted_path(card).is_file()
    assert len(served.hits(path)) == 1
    again = ssld_zoo.load(name)  # from the converted cache: no request
    assert len(served.hits(path)) == 1
    torch.testing.assert_close(again.fc.weight, src.fc.weight, rtol=0, atol=0)
    kinds = {(e.kind, e.weights) for e in hub.cache_entries()}
    assert ("download", (name,)) in kinds and ("converted", (name,)) in kinds


def test_cli_download_command(served_weights, home, capsys, monkeypatch):
    from ssld_zoo.cli.main import main

    from ssld_zoo.cli import _console

    monkeypatch.setattr(_console.console, "_width", 200)  # whole names, no folding
    name, _, path, served = served_weights
    assert main(["download", name]) == 0
    out = capsys.readouterr().out
    assert name in out and "HubTest18_pretrained.pdparams" in out
    assert (home / "converted" / f"{name}.safetensors").is_file()
    assert len(served.hits(path)) == 1
    assert main(["download", "resnet18_vd_hubtes*"]) == 0  # a pattern; cached: no request
    assert len(served.hits(path)) == 1
    assert main(["download", "nonexistent_model"]) == 1
    assert "unknown model" in capsys.readouterr().err
