"""``SimServer``: the simulator served by uvicorn on loopback, in-process.

::

    async with SimServer(SimConfig()) as sim:
        httpx.get(sim.base_url + "/v3/orderbook/BTCIRT")

It binds 127.0.0.1 (port 0 picks a free one), serves until :meth:`stop`, releases hung requests
on stop, and can abort a connection mid-request (``drop_after_accept``) because it tracks the
transport of every connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from hrkernel_sim.app import build_app
from hrkernel_sim.config import SimConfig
from hrkernel_sim.state import SimState


def _protocol_class(state: SimState) -> type[H11Protocol]:
    class SimProtocol(H11Protocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            peer = transport.get_extra_info("peername")
            if peer:
                state.connections[(peer[0], peer[1])] = transport

        def connection_lost(self, exc: Exception | None) -> None:
            peer = self.transport.get_extra_info("peername") if self.transport else None
            if peer:
                state.connections.pop((peer[0], peer[1]), None)
            super().connection_lost(exc)

    return SimProtocol


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: the embedding process owns SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class SimServer:
    """The simulator as an embeddable server (async context manager, or start/stop)."""

    def __init__(self, config: SimConfig | None = None, *,
                 clock: Callable[[], float] | None = None, state_file: str | None = None) -> None:
        self.config = config or SimConfig()
        if self.config.host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"sim.host {self.config.host!r}: the simulator listens on loopback only")
        self.state = SimState(self.config, clock, state_file)
        self.app = build_app(self.state)
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.port: int | None = None

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError("SimServer is not started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_headers(self) -> dict[str, str]:
        return {"X-Sim-Admin-Token": self.config.admin_token}

    async def start(self, tg: object | None = None) -> None:
        """Bind and serve. ``tg`` is accepted (and unused) so the object fits the kernel's
        ``Component.start(tg)`` shape; the server runs in its own task until :meth:`stop`."""
        self.state.faults.restart_clock()  # downtime windows count from here
        # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY on accepted sockets only when the
        # listening socket says TCP; without it every keep-alive answer waits ~40 ms (Nagle +
        # delayed ACK) because uvicorn writes headers and body separately.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.config.port))
        self.port = sock.getsockname()[1]
        self.state.stopping = asyncio.Event()
        config = uvicorn.Config(
            self.app, http=_protocol_class(self.state), lifespan="off", log_config=None,
            access_log=False, timeout_graceful_shutdown=2, ws="none",
        )
        self._server = _Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises the start-up error
                raise RuntimeError("simulator server exited during start-up")
            await asyncio.sleep(0.005)

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self.state.persist()
        self.state.stopping.set()
        self._server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout=5)
        except TimeoutError:
            self._server.force_exit = True
            await self._task
        self._server = None
        self._task = None
        self.state.persist()  # what requests in flight at stop changed

    def describe(self) -> dict[str, Any]:
        return {"base_url": self.base_url if self.port else None,
                "markets": sorted(self.state.engine.markets),
                "accounts": sorted(self.config.accounts)}

    async def __aenter__(self) -> SimServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
