"""The web app (dashboard, JSON API, ``/metrics``) and the kernel component that serves it.

The composition root adds the ``web`` component last, so it starts after everything it shows and
stops first on shutdown (no new actions while the kernel drains). For embedding outside a
kernel, :func:`create_health_dashboard` returns a :class:`HealthDashboard` with
``await initialize()`` / ``await start()`` / ``await stop()``.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import uvicorn
from anyio.abc import TaskGroup
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from hrkernel.lifecycle import Component, ShutdownStage
from hrkernel.logging import add_secrets, get_logger
from hrkernel.web import api, local_admin, sources
from hrkernel.web.auth import AuditLog
from hrkernel.web.config import DashboardSection
from hrkernel.web.guard import RequestGuard
from hrkernel.web.metrics import build_registry
from hrkernel.web.protocol import head_deadline_protocol

STATIC = Path(__file__).resolve().parent / "static"


class WebState:
    """What the request handlers share: the host, the config, the audit log, cached async reads."""

    def __init__(self, host: sources.Host, config: DashboardSection, instance_id: str = "hr-1") -> None:
        self.host = host
        self.config = config
        self.instance_id = instance_id
        self.audit = AuditLog(config.audit_size)
        self.started_at = time.time()
        self.stream_clients = 0
        self.closing = anyio.Event()
        self.async_cache: dict[str, Any] = {}
        self.registry = build_registry(self)
        self.admin_token: str | None = None
        """The local admin token (``local_admin``), accepted for actions like the dashboard token."""

    async def refresh_async(self) -> None:
        """Read the areas whose reads are async (orders, ledger) for the metrics collector."""
        orders = await sources.read_orders(self.host)
        self.async_cache = {"orders": orders, "ledger": await sources.read_ledger(self.host)}


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: the kernel owns SIGTERM/SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def extension_routes(host: sources.Host) -> list[BaseRoute]:
    """Routes other components offer through ``web_routes()`` (e.g. the TradingView webhook)."""
    routes: list[BaseRoute] = []
    for component in host.components:
        fn = getattr(sources.unwrap(component), "web_routes", None) or getattr(component, "web_routes", None)
        if callable(fn):
            routes.extend(fn())
    return routes


def create_app(host: sources.Host, config: DashboardSection | None = None, instance_id: str = "hr-1") -> Starlette:
    config = config or DashboardSection()
    state = WebState(host, config, instance_id)
    extensions = extension_routes(host)
    routes: list[BaseRoute] = [
        *api.routes(),
        *extensions,
        Mount("/static", app=StaticFiles(directory=str(STATIC)), name="static"),
    ]
    # The guard (Host check, security headers, body deadline, disconnects) wraps every route;
    # routes offered by components authenticate themselves and skip the Host check.
    guard = Middleware(RequestGuard, config=config, exempt=extensions)
    app = Starlette(routes=routes, middleware=[guard],
                    exception_handlers={HTTPException: http_error, Exception: component_failed})
    app.state.web = state
    return app


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    """Unknown path (404), wrong method (405): JSON like every other refusal, not Starlette's text."""
    assert isinstance(exc, HTTPException)
    kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_request")
    detail = f"{exc.detail}: {request.method} {request.url.path[:200]}"
    return JSONResponse({"error": kind, "detail": detail}, status_code=exc.status_code, headers=exc.headers)


async def component_failed(request: Request, exc: Exception) -> JSONResponse:
    """A component raised while being read: say which request and why (503), keep serving."""
    get_logger("hrkernel.web").error("dashboard_read_failed", path=request.url.path, error=f"{type(exc).__name__}: {exc}")
    return JSONResponse({"error": "component_failed", "detail": f"{type(exc).__name__}: {exc}"}, status_code=503)


class WebComponent(Component):
    """Serves the app with uvicorn inside the kernel's task group."""

    name = "web"
    shutdown_stage = ShutdownStage.STOP_INTAKE

    def __init__(self, host: sources.Host, config: DashboardSection, instance_id: str = "hr-1",
                 data_dir: str | None = None) -> None:
        self.host = host
        self.config = config
        self.instance_id = instance_id
        self.data_dir = data_dir
        """Where the local admin token and the URL file live (None: no local admin, as embedded)."""
        self.app: Starlette | None = None
        self.server: _Server | None = None
        self.port: int | None = None
        self._done = anyio.Event()
        self.log = get_logger("hrkernel.web")

    @property
    def state(self) -> WebState:
        assert self.app is not None, "initialize() first"
        return self.app.state.web  # type: ignore[no-any-return]

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    def initialize(self) -> Starlette:
        if self.app is None:
            self.app = create_app(self.host, self.config, self.instance_id)
            if self.data_dir is not None:
                token = local_admin.ensure_admin_token(self.data_dir)
                add_secrets([token])  # never in a log line, whatever carries it
                self.app.state.web.admin_token = token
        return self.app

    def _bind(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.config.host else socket.AF_INET
        # IPPROTO_TCP explicitly: only then does asyncio set TCP_NODELAY on accepted sockets;
        # without it each keep-alive answer waits ~40 ms (Nagle + delayed ACK, since uvicorn
        # writes headers and body separately).
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.config.host, self.config.port))
        except OSError as exc:
            sock.close()
            raise OSError(f"dashboard cannot listen on {self.config.host}:{self.config.port}: {exc.strerror or exc}") from None
        sock.listen(128)
        sock.setblocking(False)
        return sock

    async def start(self, tg: TaskGroup) -> None:
        app = self.initialize()
        try:
            sock = self._bind()
        except OSError as exc:
            if self.config.required:
                raise
            self.log.error("dashboard_unavailable", error=str(exc), hint="set [dashboard] port, or required = true to stop instead")
            return
        self.port = int(sock.getsockname()[1])
        # proxy_headers=False: uvicorn would otherwise believe X-Forwarded-For from any loopback
        # peer, letting a local process pose as a TradingView address; [webhook] trusted_proxies
        # is the one place that decides whose forwarding headers count.
        # http=: uvicorn's h11 protocol plus a deadline for the request head (see web.protocol).
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off",
                                timeout_graceful_shutdown=2, proxy_headers=False,
                                http=head_deadline_protocol(float(self.config.header_timeout)))
        self.server = _Server(config)
        self._done = anyio.Event()

        async def serve() -> None:
            try:
                assert self.server is not None
                await self.server.serve(sockets=[sock])
            except Exception as exc:
                self.log.error("dashboard_failed", error=f"{type(exc).__name__}: {exc}")
            finally:
                sock.close()
                self._done.set()

        tg.start_soon(serve, name="web:uvicorn")
        with anyio.fail_after(10):
            while not self.server.started:
                if self._done.is_set():
                    raise RuntimeError("the dashboard server stopped during start-up")
                await anyio.sleep(0.01)
        if self.data_dir is not None:
            local_admin.write_url(self.data_dir, self.url)
        self.log.info("dashboard_listening", url=self.url, actions="enabled" if self.config.token else "disabled (no token)")

    async def stop(self) -> None:
        if self.data_dir is not None and self.port is not None:
            local_admin.clear_url(self.data_dir)
        if self.app is not None:
            self.state.closing.set()
        if self.server is not None and not self._done.is_set():
            self.server.should_exit = True
            await self._done.wait()

    def describe(self) -> dict[str, Any]:
        if self.port:
            return {"name": self.name, "kind": "web", "url": self.url}
        # Not started (`hrkernel check`): where it will listen.
        port = self.config.port or "<any free port>"
        return {"name": self.name, "kind": "web", "listen": f"http://{self.config.host}:{port}"}


class StandaloneHost:
    """A host for embedding without a kernel: add the components the dashboard should show."""

    def __init__(self) -> None:
        self.components: list[Any] = []

    def add(self, component: Any) -> Any:
        self.components.append(component)
        return component

    def get(self, name: str) -> Any:
        for component in self.components:
            if getattr(component, "name", None) == name:
                return component
        return None


class HealthDashboard:
    """The dashboard outside a kernel: ``await initialize()``, ``await start()``, ``await stop()``."""

    def __init__(self, host: sources.Host, config: DashboardSection, instance_id: str) -> None:
        self.component = WebComponent(host, config, instance_id)
        self._tg: TaskGroup | None = None
        self._exit: contextlib.AsyncExitStack | None = None

    @property
    def app(self) -> Starlette:
        return self.component.initialize()

    @property
    def url(self) -> str:
        return self.component.url

    async def initialize(self) -> Starlette:
        return self.component.initialize()

    async def start(self) -> None:
        self._exit = contextlib.AsyncExitStack()
        self._tg = await self._exit.enter_async_context(anyio.create_task_group())
        await self.component.start(self._tg)

    async def stop(self) -> None:
        await self.component.stop()
        if self._exit is not None:
            await self._exit.aclose()
            self._exit = None

    async def __aenter__(self) -> HealthDashboard:
        await self.initialize()
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def create_health_dashboard(
    host: sources.Host | None = None, config: DashboardSection | None = None, *, instance_id: str = "hr-1", **options: Any
) -> HealthDashboard:
    """A dashboard over ``host`` (a kernel, or a :class:`StandaloneHost` by default).

    ``options`` override :class:`DashboardSection` fields (``port=0`` picks a free port).
    """
    import msgspec

    base = config or DashboardSection()
    if options:
        base = msgspec.structs.replace(base, **options)
    return HealthDashboard(host if host is not None else StandaloneHost(), base, instance_id)
