"""Fixtures for alert tests: a real loopback HTTP server that records requests, a real SMTP
server (aiosmtpd), a manual clock, and a recording channel for manager-logic tests."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from hrkernel.alerts.clock import ManualClock
from hrkernel.alerts.types import Notification


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int = 0
    """The status answered (recorded on arrival; a hanging reply answers when released)."""

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    body: Any = field(default_factory=lambda: {"ok": True})
    hang: bool = False


class RecordingServer:
    """A ThreadingHTTPServer on 127.0.0.1 recording every request; ``reply`` decides the answer.

    ``reply`` may be a :class:`Reply` or a callable ``(Recorded) -> Reply``. A hanging reply
    blocks until the test sets ``release`` (or the fixture shuts down).
    """

    Reply = Reply

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.reply: Reply | Callable[[Recorded], Reply] = Reply()
        self.release = threading.Event()
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                rec = Recorded("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length))
                reply = server.reply(rec) if callable(server.reply) else server.reply
                rec.status = reply.status
                with server.lock:
                    server.requests.append(rec)
                if reply.hang:
                    server.release.wait(30)
                data = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def all_requests(self) -> list[Recorded]:
        with self.lock:
            return list(self.requests)

    def ok_requests(self) -> list[Recorded]:
        """Requests answered with a 2xx status."""
        with self.lock:
            return [r for r in self.requests if 200 <= r.status < 300]

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def http_server() -> Iterator[RecordingServer]:
    server = RecordingServer()
    server.thread.start()
    yield server
    server.close()


@pytest.fixture
def make_http_server() -> Iterator[Callable[[], RecordingServer]]:
    servers: list[RecordingServer] = []

    def make() -> RecordingServer:
        server = RecordingServer()
        server.thread.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


class RecordingChannel:
    """An in-process channel that keeps what it was asked to deliver (for manager logic)."""

    def __init__(self) -> None:
        self.sent: list[Notification] = []

    async def send(self, notification: Notification) -> None:
        self.sent.append(notification)

    def titles(self) -> list[list[str]]:
        return [[a.title for a in n.alerts] for n in self.sent]


@pytest.fixture
def recording_channel() -> Callable[[], RecordingChannel]:
    return RecordingChannel


@dataclass
class SmtpServer:
    host: str
    port: int
    messages: list[Any]
    auth: list[tuple[str, str]]
    ca_file: str


def _self_signed(tmp: Path) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1, made with the openssl command line."""
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (needed for the STARTTLS test certificate)")
    cert_file, key_file = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key_file), "-out", str(cert_file)],
        check=True, capture_output=True,
    )
    return str(cert_file), str(key_file)


@pytest.fixture
def smtp_server(tmp_path: Path) -> Iterator[SmtpServer]:
    """A real SMTP server (aiosmtpd) on loopback requiring STARTTLS and login alice/s3cret-pw."""
    import ssl

    pytest.importorskip("aiosmtpd")
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    cert, key = _self_signed(tmp_path)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    messages: list[Any] = []
    logins: list[tuple[str, str]] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            messages.append(envelope)
            return "250 OK"

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            user, password = auth_data.login.decode(), auth_data.password.decode()
            logins.append((user, password))
            return AuthResult(success=(user, password) == ("alice", "s3cret-pw"), handled=False)
        return AuthResult(success=False, handled=False)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    controller = Controller(
        Handler(), hostname="127.0.0.1", port=port, tls_context=tls, require_starttls=True,
        authenticator=authenticator, auth_require_tls=True, ready_timeout=10,
    )
    controller.start()
    try:
        yield SmtpServer("127.0.0.1", port, messages, logins, cert)
    finally:
        controller.stop()


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.01)
