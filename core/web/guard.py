"""Request hardening for everything the dashboard's listener serves (page, API, webhook routes).

One pure ASGI middleware, outermost inside Starlette's error handler, so every route gets it:

- **Host check** (DNS rebinding): a page on ``evil.example`` whose name is re-pointed at
  127.0.0.1 reaches the dashboard with ``Host: evil.example``. Requests are answered only when
  ``Host`` is an IP literal (a browser sends one only when the page itself came from that
  address), ``localhost``/``*.localhost``, the configured ``host``, or a name in
  ``[dashboard] allowed_hosts``; others get 403. Routes offered by components (the TradingView
  webhook, which a proxy reaches under its public name) are exempt: they authenticate themselves.
- **Response headers**: a Content-Security-Policy allowing only this origin's scripts, styles and
  connections, ``X-Frame-Options: DENY``, ``X-Content-Type-Options: nosniff``,
  ``Referrer-Policy: no-referrer``, and ``Cache-Control: no-store`` on everything but
  ``/static``.
- **Slow bodies**: a request body must arrive within ``[dashboard] body_timeout`` of the request
  (else 408 and the connection closes), and at most ``[dashboard] max_incomplete_bodies``
  requests may be sending their body at once (more get 503 at once): a client that trickles
  bytes or stops half-way cannot hold connections and tasks forever.
- **Disconnects**: a client that goes away before its body is complete is one ``info`` line
  (``http_client_disconnected``), not a traceback. Handlers let :class:`ClientDisconnect` (and
  :class:`BodyTimeout`) through, or log it once themselves.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import anyio
import msgspec
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import ClientDisconnect
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hrkernel.logging import get_logger
from hrkernel.web.config import DashboardSection

log = get_logger("hrkernel.web")

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}
_WILDCARD_BINDS = {"0.0.0.0", "::", ""}


class BodyTimeout(ClientDisconnect):
    """The request body did not arrive within ``body_timeout``.

    A :class:`ClientDisconnect` so that handlers treat it like one (stop reading, answer nothing
    of their own); the guard answers 408 and closes the connection.
    """


def host_name(header: str) -> str:
    """The name part of a ``Host`` header, lower-case, without port or trailing dot."""
    value = header.strip().lower()
    if value.startswith("["):  # [::1]:8080
        return value[1:].partition("]")[0]
    name, sep, port = value.rpartition(":")
    if sep and port.isdigit() and ":" not in name:
        value = name
    return value.rstrip(".")


class HostPolicy:
    """Which ``Host`` names the dashboard answers (see the module docstring)."""

    def __init__(self, bind_host: str, allowed: Sequence[str]) -> None:
        names = [n.strip().lower().rstrip(".") for n in allowed if n.strip()]
        self.any = "*" in names
        self.suffixes = tuple(n for n in names if n.startswith("."))
        self.names = {n for n in names if not n.startswith(".")} | {"localhost"}
        if bind_host.strip().lower() not in _WILDCARD_BINDS:
            self.names.add(host_name(bind_host))

    def allows(self, header: str | None) -> bool:
        if self.any or header is None:
            # No Host at all: not a browser (every browser sends one), so not a rebinding page.
            return True
        name = host_name(header)
        if name in self.names or name.endswith(".localhost") or name.endswith(self.suffixes or ("\0",)):
            return True
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return False
        return True  # an IP literal cannot be re-pointed by DNS


def _json(status: int, body: dict[str, str], extra: dict[str, str] | None = None) -> tuple[Message, Message]:
    payload = msgspec.json.encode(body)
    headers = {"content-type": "application/json", "content-length": str(len(payload)), "connection": "close",
               "cache-control": "no-store", **SECURITY_HEADERS, **(extra or {})}
    start: Message = {"type": "http.response.start", "status": status,
                      "headers": [(k.encode(), v.encode()) for k, v in headers.items()]}
    return start, {"type": "http.response.body", "body": payload}


def _has_body(headers: Headers) -> bool:
    length = headers.get("content-length")
    if length is not None:
        return length.strip() != "0"
    return "transfer-encoding" in headers


class RequestGuard:
    """The ASGI middleware; ``exempt`` routes skip the Host check only."""

    def __init__(self, app: ASGIApp, config: DashboardSection, exempt: Sequence[BaseRoute] = ()) -> None:
        self.app = app
        self.hosts = HostPolicy(config.host, config.allowed_hosts)
        self.body_timeout = float(config.body_timeout)
        self.max_incomplete = config.max_incomplete_bodies
        self.exempt = list(exempt)
        self.incomplete = 0
        """Requests whose body is still arriving (what ``max_incomplete_bodies`` bounds)."""

    def _is_exempt(self, scope: Scope) -> bool:
        return any(route.matches(scope)[0] is not Match.NONE for route in self.exempt)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        path = scope.get("path", "")
        if not self.hosts.allows(headers.get("host")) and not self._is_exempt(scope):
            shown = (headers.get("host") or "")[:80]
            for message in _json(403, {"error": "host_not_allowed", "field": "Host", "detail":
                                       f"Host {shown!r} is not a name of this dashboard; add it to [dashboard] allowed_hosts"}):
                await send(message)
            return
        reading = _has_body(headers)
        if reading and self.incomplete >= self.max_incomplete:
            log.warning("http_body_readers_full", path=path, limit=self.max_incomplete)
            for message in _json(503, {"error": "busy", "detail": f"{self.max_incomplete} requests are still sending their body "
                                       "([dashboard] max_incomplete_bodies); retry shortly"}, {"retry-after": "1"}):
                await send(message)
            return
        if reading:
            self.incomplete += 1
        deadline = anyio.current_time() + self.body_timeout
        timed_out = False
        started = False

        def body_done() -> None:
            nonlocal reading
            if reading:
                reading = False
                self.incomplete -= 1

        async def guarded_receive() -> Message:
            nonlocal timed_out
            if not reading:
                return await receive()
            with anyio.move_on_after(deadline - anyio.current_time()):
                message = await receive()
                if message["type"] != "http.request" or not message.get("more_body", False):
                    body_done()
                return message
            timed_out = True
            body_done()
            raise BodyTimeout(f"the request body did not arrive within {self.body_timeout:g} s ([dashboard] body_timeout)")

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if timed_out:
                return  # the guard answers 408 below, whatever the handler made of the timeout
            if message["type"] == "http.response.start":
                started = True
                out = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    out.setdefault(name, value)
                if not path.startswith("/static/"):
                    out.setdefault("cache-control", "no-store")
            await send(message)

        try:
            await self.app(scope, guarded_receive, guarded_send)
        except ClientDisconnect as exc:
            client = scope.get("client")
            where = f"{client[0]}:{client[1]}" if client else "?"
            if timed_out:
                log.warning("http_body_timeout", method=scope.get("method"), path=path, client=where, detail=str(exc))
            else:
                log.info("http_client_disconnected", method=scope.get("method"), path=path, client=where,
                         detail="the client went away before sending the whole body")
        finally:
            body_done()
        if timed_out and not started:
            detail = f"the request body did not arrive within {self.body_timeout:g} s"
            for message in _json(408, {"error": "body_timeout", "field": "body", "detail": detail}):
                await send(message)
