"""The request guard on the dashboard's listener, driven over real sockets: a client that leaves
half-way is one log line, a stalled body is cut off, slow bodies are bounded, a foreign ``Host``
is refused, and every answer carries the security headers."""

from __future__ import annotations

import json
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hrkernel.web.guard import HostPolicy, host_name

WEBHOOK_SECRET = "wh-guard-secret-1"
TOKEN = "web-test-token-123"
"""The dashboard token of tests/web/conftest.py's kernels (and of the subprocess kernel here)."""


def raw_request(port: int, head: str, body: bytes = b"") -> socket.socket:
    """Send the request head and ``body`` (possibly only part of what Content-Length says)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=15)
    sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
    return sock


def read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read until the server closes the connection; the status, headers and body."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def post_head(path: str, length: int, host: str = "127.0.0.1", token: bool = True) -> str:
    auth = f"Authorization: Bearer {TOKEN}\n" if token else ""
    return f"POST {path} HTTP/1.1\nHost: {host}\n{auth}Content-Type: application/json\nContent-Length: {length}\n\n"


# ---------------------------------------------------------------------------- disconnects


@pytest.fixture
def webhook_kernel(kernel_process: Callable[..., Any], tmp_path: Path, unused_port: Callable[[], int]) -> Iterator[tuple[Any, int]]:
    port = unused_port()
    config = tmp_path / "hr.toml"
    config.write_text(f"""
[kernel]
data_dir = "{tmp_path / 'data'}"
[dashboard]
port = {port}
token = "${{DASH_TOKEN}}"
[webhook]
enabled = true
secret = "${{HR_WEBHOOK_SECRET}}"
""")
    kernel = kernel_process(config, env={"HR_WEBHOOK_SECRET": WEBHOOK_SECRET, "DASH_TOKEN": TOKEN}, cwd=tmp_path)
    kernel.wait_for("ready", timeout=30)
    yield kernel, port
    kernel.kill()


def test_a_client_that_disconnects_mid_body_is_one_log_line_not_a_traceback(webhook_kernel: tuple[Any, int]) -> None:
    kernel, port = webhook_kernel
    webhook = json.dumps({"secret": WEBHOOK_SECRET, "ticker": "BTCIRT", "action": "buy", "amount": "0.1"}).encode()
    for head, body in (
        (post_head("/webhooks/tradingview", len(webhook), token=False), webhook[: len(webhook) // 2]),
        (post_head("/api/killswitch", 40), b'{"on": tr'),
        (post_head("/api/breakers/x/reset", 40), b"{"),
    ):
        sock = raw_request(port, head, body)
        time.sleep(0.2)  # let the server start reading, then vanish
        sock.close()
    kernel.wait_for("webhook_body_incomplete", timeout=10)
    kernel.wait_for("http_client_disconnected", timeout=10, path="/api/killswitch")
    kernel.wait_for("http_client_disconnected", timeout=10, path="/api/breakers/x/reset")
    # The server is fine afterwards: the same requests, whole, are answered.
    ok = httpx.post(f"http://127.0.0.1:{port}/webhooks/tradingview", content=webhook, timeout=5)
    assert ok.status_code == 200, ok.text
    kernel.signal(signal.SIGTERM)
    assert kernel.wait(timeout=20) == 0
    output = kernel.output()
    for bad in ("Traceback", "Exception in ASGI application", "dashboard_read_failed", '"level": "error"'):
        assert bad not in output, f"{bad!r} in the kernel's log:\n{output[-4000:]}"
    aborted = [e for e in kernel.events if e.get("event") in ("webhook_body_incomplete", "http_client_disconnected")]
    assert len(aborted) == 3 and all(e["level"] == "info" for e in aborted), aborted


# ---------------------------------------------------------------------------- slow bodies


def test_a_stalled_body_is_answered_408_and_the_connection_closed(make_kernel: Callable[[str], Any]) -> None:
    k = make_kernel('body_timeout = "1s"')
    port = int(k.url.rsplit(":", 1)[1])
    sock = raw_request(port, post_head("/api/killswitch", 40), b'{"on": ')  # then nothing more
    started = time.monotonic()
    status, headers, body = read_answer(sock)  # returns only once the server closes
    waited = time.monotonic() - started
    assert status == 408 and headers["connection"] == "close"
    assert json.loads(body) == {"error": "body_timeout", "field": "body", "detail": "the request body did not arrive within 1 s"}
    assert 0.5 < waited < 10, waited
    assert k.call(lambda: k.get("web").state.audit.recent()) == [], "nothing was done, nothing audited"


def test_slow_bodies_are_bounded_and_other_requests_still_served(make_kernel: Callable[[str], Any]) -> None:
    k = make_kernel('body_timeout = "3s"\nmax_incomplete_bodies = 2')
    port = int(k.url.rsplit(":", 1)[1])
    stalled = [raw_request(port, post_head("/api/killswitch", 40), b"{") for _ in range(2)]
    try:
        # The two stalled requests reach the guard in a moment; from then on a third body waits
        # in vain for a slot: 503 at once, while requests without a body are served as usual.
        deadline = time.monotonic() + 5
        while True:
            third = httpx.post(k.url + "/api/killswitch", json={"on": False}, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
            if third.status_code == 503 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert third.status_code == 503, third.text
        assert third.json()["error"] == "busy" and third.headers["retry-after"] == "1"
        assert httpx.get(k.url + "/api/status", timeout=5).status_code == 200
        for sock in stalled:
            assert read_answer(sock)[0] == 408
        again = httpx.post(k.url + "/api/killswitch", json={"on": False}, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
        assert again.status_code != 503, again.text
    finally:
        for sock in stalled:
            sock.close()


# ---------------------------------------------------------------------------- Host and headers


@pytest.mark.parametrize(("header", "name"), [("LocalHost:8080", "localhost"), ("[::1]:80", "::1"), ("::1", "::1"),
                                              ("hr.example.com.", "hr.example.com"), ("10.0.0.1:9", "10.0.0.1")])
def test_host_names_are_read_without_port(header: str, name: str) -> None:
    assert host_name(header) == name


def test_host_policy() -> None:
    policy = HostPolicy("127.0.0.1", ["hr.example.com", ".corp.example"])
    for good in ("127.0.0.1:8080", "localhost", "app.localhost", "[::1]:8080", "192.168.1.9", "HR.example.com", "x.corp.example", None):
        assert policy.allows(good), good
    for bad in ("evil.example", "evil.example:8080", "127.0.0.1.nip.io", "corp.example.evil", "hr.example.com.evil", ""):
        assert not policy.allows(bad), bad
    assert HostPolicy("dash.internal", []).allows("dash.internal:8080")
    assert HostPolicy("0.0.0.0", ["*"]).allows("anything.example")


def test_a_foreign_host_is_refused_and_listed_names_are_served(make_kernel: Callable[[str], Any]) -> None:
    k = make_kernel('allowed_hosts = ["hr.example.com"]')
    port = int(k.url.rsplit(":", 1)[1])
    for path in ("/", "/api/status", "/api/snapshot", "/metrics", "/static/app.js"):
        r = httpx.get(k.url + path, headers={"Host": f"rebind.attacker.example:{port}"}, timeout=5)
        assert r.status_code == 403, (path, r.status_code)
        assert r.json()["field"] == "Host" and "allowed_hosts" in r.json()["detail"]
    refused = httpx.post(k.url + "/api/killswitch", json={"on": True}, headers={"Host": "evil.example", "Authorization": f"Bearer {TOKEN}"}, timeout=5)
    assert refused.status_code == 403 and k.call(lambda: k.get("web").state.audit.recent()) == []
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", "hr.example.com", f"hr.example.com:{port}"):
        assert httpx.get(k.url + "/api/status", headers={"Host": host}, timeout=5).status_code == 200, host


def test_every_answer_carries_the_security_headers(make_kernel: Callable[[str], Any]) -> None:
    k = make_kernel()
    for path in ("/", "/api/status", "/api/openapi.json", "/livez", "/metrics", "/static/app.js", "/api/nope"):
        r = httpx.get(k.url + path, timeout=5)
        assert r.headers["x-frame-options"] == "DENY", path
        assert r.headers["x-content-type-options"] == "nosniff", path
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp, path
        if path.startswith("/api/") or path in ("/metrics", "/livez"):
            assert r.headers["cache-control"] == "no-store", path
    assert "no-store" not in httpx.get(k.url + "/static/style.css", timeout=5).headers.get("cache-control", "")
    refused = httpx.post(k.url + "/api/killswitch", json={"on": True}, timeout=5)
    assert refused.status_code == 401 and refused.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("sent", [b"", b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "], ids=["idle", "trickling-head"])
def test_a_connection_without_a_whole_request_head_is_closed_after_header_timeout(make_kernel: Callable[[str], Any], sent: bytes) -> None:
    k = make_kernel('header_timeout = "1s"')
    port = int(k.url.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port), timeout=15)
    started = time.monotonic()
    sock.sendall(sent)
    for _ in range(3):  # keep trickling: each byte must not restart the deadline
        time.sleep(0.2)
        if sent:
            sock.sendall(b"x")
    assert sock.recv(1024) == b"", "the server should close the connection without an answer"
    assert 0.5 < time.monotonic() - started < 10
    sock.close()
    # A client that sends its request in time is served, also on a kept-alive connection after
    # an answer, and a slow handler is not cut off by the head deadline.
    with httpx.Client(base_url=k.url, timeout=5) as c:
        assert c.get("/api/status").status_code == 200
        time.sleep(0.3)
        assert c.get("/api/status").status_code == 200
