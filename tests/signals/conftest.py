from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import uvicorn
from starlette.applications import Starlette

from hrkernel.bus.base import Bus
from hrkernel.bus.memory import MemoryBus
from hrkernel.signals.config import WebhookSection
from hrkernel.signals.intake import WebhookIntake

SECRET = "s3cret-for-tests"


class RunningIntake:
    def __init__(self, intake: WebhookIntake, url: str, bus: Bus | None) -> None:
        self.intake = intake
        self.url = url
        self.bus = bus


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[no-untyped-def]
        yield


@contextlib.asynccontextmanager
async def serve_intake(
    tmp: Path, bus: Bus | None = None, **overrides: Any
) -> AsyncIterator[RunningIntake]:
    """The intake behind a real uvicorn on 127.0.0.1 (free port), its processor running."""
    settings: dict[str, Any] = {"enabled": True, "secret": SECRET, "markets": ["BTCIRT", "USDTIRT", "BTCUSDT", "ETHIRT"]}
    settings.update(overrides)
    config = WebhookSection(**settings)
    intake = WebhookIntake(config, tmp / "inbox.jsonl", bus)
    intake.inbox.open()
    app = Starlette(routes=intake.routes())
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    # proxy_headers off: X-Forwarded-For is judged by [webhook] trusted_proxies alone.
    server = _Server(uvicorn.Config(app, log_level="warning", lifespan="off", proxy_headers=False))
    served = anyio.Event()

    async def serve() -> None:
        try:
            await server.serve([sock])
        finally:
            served.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(serve)
        tg.start_soon(intake.run_processor, 0.05)
        while not server.started:
            await anyio.sleep(0.01)
        try:
            yield RunningIntake(intake, f"http://127.0.0.1:{port}{config.path}", bus)
        finally:
            server.should_exit = True
            with anyio.move_on_after(5):
                await served.wait()
            tg.cancel_scope.cancel()
    intake.inbox.close()
    sock.close()


@pytest.fixture
def intake_server(tmp_path: Path) -> Callable[..., Any]:
    """``async with intake_server(bus=MemoryBus(), **webhook_settings) as running: ...``"""

    def make(bus: Bus | None = None, **overrides: Any) -> Any:
        return serve_intake(tmp_path, bus, **overrides)

    return make


@pytest.fixture
def memory_bus() -> MemoryBus:
    return MemoryBus()


@pytest.fixture
def http() -> Callable[[], httpx.AsyncClient]:
    return lambda: httpx.AsyncClient(timeout=5.0)
