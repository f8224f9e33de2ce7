"""Server-sent events: the page's live feed.

Each open page gets a ``snapshot`` event (the whole page state as JSON) every
``[dashboard] push_interval``, and a comment line in between so proxies keep the connection. The
stream ends when the client goes away or the kernel shuts down (so shutdown never waits on it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio
import msgspec
from starlette.requests import Request
from starlette.responses import StreamingResponse

from hrkernel.logging import get_logger

if TYPE_CHECKING:
    from hrkernel.web.app import WebState

log = get_logger("hrkernel.web.sse")


def format_event(event: str, data: Any) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + msgspec.json.encode(data) + b"\n\n"


def snapshot_stream(
    request: Request, state: WebState, build: Callable[[WebState], Awaitable[dict[str, Any]]]
) -> StreamingResponse:
    async def stream() -> AsyncIterator[bytes]:
        state.stream_clients += 1
        try:
            yield b"retry: 2000\n\n"
            while not state.closing.is_set():
                try:
                    payload = await build(state)
                except Exception as exc:  # one broken area must not kill the page's feed
                    log.error("dashboard_snapshot_failed", error=f"{type(exc).__name__}: {exc}")
                    yield format_event("problem", {"detail": f"{type(exc).__name__}: {exc}"})
                else:
                    yield format_event("snapshot", payload)
                with anyio.move_on_after(float(state.config.push_interval)):
                    await state.closing.wait()
                if await request.is_disconnected():
                    break
        finally:
            state.stream_clients -= 1

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
