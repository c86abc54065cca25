"""A real HTTP server on 127.0.0.1 that serves files and misbehaves on request, and the
fixtures the weights tests share (imported by ``tests/weights/conftest.py``; other test
folders import them from here).

Misbehaviours, each per URL path: error statuses (with ``Retry-After``), a connection dropped
after N bytes (once or always), a body shorter than its ``Content-Length``, an HTML page with
200, a body trickled a byte at a time, a body that stalls after N bytes, redirects, no
``Content-Length``, Range ignored, a delay before answering (to overlap concurrent downloads).
"""

from __future__ import annotations

import hashlib
import http.server
import re
import threading
import time
from dataclasses import dataclass, field

import pytest

HTML = b"<!DOCTYPE html><html><body>Please sign in to download</body></html>\n"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Served:
    """What the test server serves, how it misbehaves, and what it saw."""

    files: dict[str, bytes] = field(default_factory=dict)
    drop_once: dict[str, int] = field(default_factory=dict)  # path -> bytes sent, then close
    drop_always: dict[str, int] = field(default_factory=dict)  # the same on every request
    fail_with: dict[str, list[int]] = field(default_factory=dict)  # path -> statuses to answer
    retry_after: dict[str, str] = field(default_factory=dict)  # path -> Retry-After of failures
    ignore_range: set[str] = field(default_factory=set)  # answer 200 to Range requests
    html: set[str] = field(default_factory=set)  # 200 + an HTML page instead
    trickle: dict[str, float] = field(default_factory=dict)  # path -> seconds per byte
    stall_after: dict[str, tuple[int, float]] = field(default_factory=dict)  # path -> (bytes
    # sent per response, then seconds of silence before the connection closes)
    redirect: dict[str, str] = field(default_factory=dict)  # path -> Location (302)
    no_length: set[str] = field(default_factory=set)  # no Content-Length header
    delay: dict[str, float] = field(default_factory=dict)  # path -> seconds before answering
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

        def answer_empty(self, status: int, headers: dict[str, str] | None = None) -> None:
            """A reply with no body: the status, these headers, Content-Length 0."""
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self):
            path = self.path.split("?")[0]
            with served.lock:
                served.requests.append((path, dict(self.headers)))
                statuses = served.fail_with.get(path)
                status = statuses.pop(0) if statuses else None
            time.sleep(served.delay.get(path, 0))
            if status is not None:
                retry = served.retry_after.get(path)
                self.answer_empty(status, None if retry is None else {"Retry-After": retry})
                return
            if path in served.redirect:
                self.answer_empty(302, {"Location": served.redirect[path]})
                return
            if path in served.html:
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(HTML)))
                self.end_headers()
                self.wfile.write(HTML)
                return
            data = served.files.get(path)
            if data is None:
                self.answer_empty(404)
                return
            etag = f'"{sha(data)[:16]}"'
            start = 0
            m = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
            if_range = self.headers.get("If-Range")
            if m and path not in served.ignore_range and if_range in (None, etag):
                start = int(m[1])
                if start >= len(data):
                    self.answer_empty(416, {"Content-Range": f"bytes */{len(data)}"})
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Type", "application/octet-stream")
            if path not in served.no_length:
                self.send_header("Content-Length", str(len(body)))
            self.send_header("ETag", etag)
            self.end_headers()
            with served.lock:
                cut = served.drop_once.pop(path, served.drop_always.get(path))
            try:
                if path in served.trickle:
                    for i in range(len(body)):
                        self.wfile.write(body[i : i + 1])
                        self.wfile.flush()
                        time.sleep(served.trickle[path])
                    return
                if path in served.stall_after:
                    sent, silence = served.stall_after[path]
                    self.wfile.write(body[:sent])
                    self.wfile.flush()
                    time.sleep(silence)
                    return
                self.wfile.write(body if cut is None else body[:cut])  # a cut: then close
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up, as it should

    return Handler


@pytest.fixture
def server():
    """A threaded HTTP server on an ephemeral port; yields (base URL, Served)."""
    served = Served()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(served))
    httpd.daemon_threads = True
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", served
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A private cache, no mirror, online; fast, bounded retries and short deadlines."""
    from ssld_zoo.weights import fetch

    monkeypatch.setenv("SSLD_ZOO_HOME", str(tmp_path / "home"))
    for name in (
        "SSLD_ZOO_OFFLINE",
        "SSLD_ZOO_MIRROR",
        "SSLD_ZOO_MAX_FILE_BYTES",
        "SSLD_ZOO_DOWNLOAD_RETRIES",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SSLD_ZOO_DOWNLOAD_TIMEOUT", "5")
    monkeypatch.setenv("SSLD_ZOO_DOWNLOAD_DEADLINE", "30")
    monkeypatch.setattr(fetch, "BACKOFF_S", 0.01)
    return tmp_path / "home"


def cache_listing(home) -> dict[str, list[str]]:
    """Every file left in the cache, per folder (hidden lock files aside)."""
    out = {}
    for sub in ("downloads", "converted", "quarantine"):
        d = home / sub
        out[sub] = (
            sorted(p.name for p in d.iterdir() if not p.name.startswith(".")) if d.exists() else []
        )
    return out


def pdparams_bytes(arch: str, seed: int = 0, tweak=None) -> bytes:
    """A ``.pdparams`` (PaddleClas names and layouts) of ``arch`` with random tensors, BN
    statistics included; ``tweak(paddle_state)`` may change it first."""
    import io
    import pickle

    import numpy as np
    import torch

    import ssld_zoo
    from ssld_zoo.weights.convert import torch_to_paddle

    torch.manual_seed(seed)
    model = ssld_zoo.load(arch, pretrained=False)
    with torch.no_grad():
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.copy_(torch.rand_like(t) + 0.5)
    state = torch_to_paddle(model)
    if tweak is not None:
        tweak(state)
    buf = io.BytesIO()
    pickle.dump({k: np.ascontiguousarray(v) for k, v in state.items()}, buf, protocol=4)
    return buf.getvalue()


def run_concurrently(call, n: int, timeout: float) -> tuple[list, list]:
    """Run ``call()`` in ``n`` threads at once; return (results, exceptions raised)."""
    results, errors = [], []

    def worker():
        try:
            results.append(call())
        except Exception as e:  # pragma: no cover - reported by the caller's assertion
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    return results, errors
