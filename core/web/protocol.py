"""uvicorn's h11 protocol with a deadline for the request head.

uvicorn closes an idle keep-alive connection only *after* a response, and cancels that timer on
the first byte received; a client that connects and sends nothing, or trickles its request line
and headers a byte at a time, holds the connection (and its socket) for as long as it likes. The
body deadline of :mod:`hrkernel.web.guard` cannot help there: the app is only called once the
head is complete. This protocol closes a connection whose next request head has not fully arrived
within ``[dashboard] header_timeout`` of the connection being made or the previous answer.

It subclasses uvicorn's own protocol (named explicitly in the server config, so installing
httptools does not silently switch it off) and touches only its documented hooks plus
``cycle``: the web tests drive it with raw sockets, so a uvicorn change that breaks it fails there.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


class HeadDeadlineH11Protocol(H11Protocol):
    head_timeout: float = 10.0
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        before = self.cycle
        super().handle_events()
        if self.cycle is not before:  # a whole request head arrived: the app takes it from here
            self._disarm_head_timer()

    def on_response_complete(self) -> None:
        # Armed before uvicorn looks for a pipelined request, which disarms it again.
        self._arm_head_timer()
        super().on_response_complete()

    def _arm_head_timer(self) -> None:
        self._disarm_head_timer()
        self._head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        try:
            self.conn.send(h11.ConnectionClosed())
        except h11.LocalProtocolError:
            pass  # half-way through a message: closing the socket is all that is left to do
        self.transport.close()


def head_deadline_protocol(timeout: float) -> type[Any]:
    """The protocol class for ``uvicorn.Config(http=...)`` with this head deadline."""
    return type("HeadDeadlineH11Protocol", (HeadDeadlineH11Protocol,), {"head_timeout": timeout})
