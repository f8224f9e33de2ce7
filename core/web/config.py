"""The ``[dashboard]`` section of hr.toml."""

from __future__ import annotations

import msgspec

from hrkernel.types import ConfigStruct, Duration


class DashboardSection(ConfigStruct, kw_only=True):
    enabled: bool = True
    """Serve the dashboard, JSON API and ``/metrics`` inside the kernel."""
    host: str = "127.0.0.1"
    """Listen address. Keep it on loopback; put a reverse proxy in front for remote access."""
    port: int = 8080
    """0 picks a free port (logged as ``dashboard_listening``)."""
    required: bool = False
    """When true, a dashboard that cannot listen stops start-up; by default the kernel logs
    ``dashboard_unavailable`` and keeps trading without it (a taken port must not stop trading)."""
    token: str | None = None
    """Dashboard token (write it as ``${VAR}``). Every action needs it; without one, actions are
    refused."""
    require_token_for_reads: bool = False
    """Also require the token for the page, ``/api/...`` reads, the event stream and ``/metrics``."""
    push_interval: Duration = Duration(1.0)
    """How often the event stream pushes a fresh snapshot to open pages."""
    stale_after: Duration = Duration(5.0)
    """The page marks its data stale when no update arrived for this long."""
    audit_size: int = 1000
    """Actions kept in the in-memory audit log (each is also logged through structlog)."""
    allowed_hosts: list[str] = msgspec.field(default_factory=list)
    """``Host`` names the dashboard answers besides IP literals, ``localhost`` and ``host``
    (DNS-rebinding defence): the name a reverse proxy forwards, e.g. ``["hr.example.com"]``;
    ``".example.com"`` allows its subdomains, ``["*"]`` turns the check off. Other names get 403."""
    header_timeout: Duration = Duration(10.0)
    """A connection must deliver a whole request head (request line and headers) within this long
    of being opened or of the previous answer, else it is closed: an idle or trickling client
    cannot hold a connection forever."""
    body_timeout: Duration = Duration(10.0)
    """A request body (an action's, the webhook's) must arrive within this long of the request,
    else 408 and the connection is closed."""
    max_incomplete_bodies: int = 32
    """Requests that may be sending their body at the same time; more get 503 at once, so slow
    clients cannot hold every connection."""

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be 0..65535, found {self.port}")
        if self.token == "":
            self.token = None  # "${VAR:-}" with VAR unset: no token, actions disabled
        if self.token is not None and len(self.token) < 8:
            raise ValueError("token must be at least 8 characters")
        if not 0 < float(self.header_timeout) <= 3600:
            raise ValueError(f"header_timeout must be more than 0 and at most 1h, found {float(self.header_timeout):g} s")
        if not 0 < float(self.body_timeout) <= 3600:
            raise ValueError(f"body_timeout must be more than 0 and at most 1h, found {float(self.body_timeout):g} s")
        if self.max_incomplete_bodies < 1:
            raise ValueError(f"max_incomplete_bodies must be >= 1, found {self.max_incomplete_bodies}")
        if self.audit_size < 1:
            raise ValueError(f"audit_size must be >= 1, found {self.audit_size}")
