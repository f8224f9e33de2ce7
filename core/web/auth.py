"""The dashboard token and the audit log of actions.

The token is sent as ``Authorization: Bearer <token>`` (or ``X-HR-Token``). A request without one
gets 401, a wrong one 403; tokens are compared in constant time. Without a configured token
every action is refused (403): the kernel never runs unguarded controls.

The audit log is an in-memory ring (``[dashboard] audit_size`` entries, served at
``/api/audit``) and every entry is also written through structlog as ``dashboard_action`` (so it
lands in the kernel's JSON log). The token itself is never recorded.
"""

from __future__ import annotations

import hmac
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse

from hrkernel.logging import get_logger


class AuditEntry(msgspec.Struct, frozen=True, kw_only=True):
    at: float
    action: str
    target: str
    outcome: str
    """``ok``, ``refused`` (auth), ``not_found``, ``unsupported`` or ``error``."""
    detail: str
    client: str


class AuditLog:
    def __init__(self, size: int = 1000, wall: Callable[[], float] = time.time) -> None:
        self.entries: deque[AuditEntry] = deque(maxlen=size)
        self.wall = wall
        self.log = get_logger("hrkernel.web.audit")
        self.counts: dict[tuple[str, str], int] = {}

    def record(self, action: str, target: str, outcome: str, detail: str, client: str) -> AuditEntry:
        entry = AuditEntry(at=self.wall(), action=action, target=target, outcome=outcome, detail=detail, client=client)
        self.entries.append(entry)
        self.counts[(action, outcome)] = self.counts.get((action, outcome), 0) + 1
        emit = self.log.info if outcome == "ok" else self.log.warning
        emit("dashboard_action", action=action, target=target, outcome=outcome, detail=detail, client=client)
        return entry

    def recent(self, limit: int = 100) -> list[AuditEntry]:
        return list(self.entries)[-limit:][::-1]


def presented_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return request.headers.get("x-hr-token") or None


def check_token(request: Request, expected: str | None, local: str | None = None) -> JSONResponse | None:
    """None when the request carries the right token (the dashboard token, or ``local``: the
    local admin token of ``hrkernel.web.local_admin``); otherwise the 401/403 response to send."""
    given = presented_token(request)
    if given is None:
        return JSONResponse(
            {"error": "unauthorized", "detail": "this needs the dashboard token (Authorization: Bearer <token>)"},
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="hrkernel"'},
        )
    if local and hmac.compare_digest(given.encode(), local.encode()):
        return None
    if expected is None:
        return JSONResponse({"error": "forbidden", "detail": "no dashboard token is configured ([dashboard] token), so actions are disabled"}, status_code=403)
    if not hmac.compare_digest(given.encode(), expected.encode()):
        return JSONResponse({"error": "forbidden", "detail": "wrong dashboard token"}, status_code=403)
    return None


def client_of(request: Request) -> str:
    return f"{request.client.host}:{request.client.port}" if request.client else "?"


def describe_refusal(response: JSONResponse) -> str:
    body: Any = msgspec.json.decode(bytes(response.body))
    return str(body.get("detail", ""))
