"""A TCP proxy the chaos runner puts between a kernel and the private redis-server, to cut the
network path while Redis keeps running.

Two ways to cut, because a network failure is rarely a clean close:

- ``rst``: every open connection is reset (RST, not FIN) and new connections are reset as soon
  as they are accepted, like a firewall rejecting the port;
- ``blackhole``: connections stay open and new ones are accepted, but nothing is forwarded in
  either direction until the cut ends, like a partition where packets are dropped: the client
  only notices through its own timeouts. What was sent during the cut is delivered when it ends
  (TCP retransmits), unless the client gave up on the connection first.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from typing import Any


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST: SO_LINGER on with a zero timeout, then abort."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.transport.abort()


class TcpProxy:
    """Listens on 127.0.0.1:``port`` (0: a free one) and forwards to 127.0.0.1:``upstream``.

    Runs its own event loop in a daemon thread; :meth:`cut` and :meth:`restore` are called from
    the runner's thread.
    """

    def __init__(self, upstream: int, port: int = 0) -> None:
        self.upstream = upstream
        self.port = port
        self.mode: str | None = None
        self.cuts = 0
        self._loop = asyncio.new_event_loop()
        self._open: asyncio.Event | None = None
        self._server: asyncio.AbstractServer | None = None
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter | None]] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"chaos-proxy-{upstream}", daemon=True)

    def start(self) -> int:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)
        return self.port

    async def _listen(self) -> None:
        self._open = asyncio.Event()
        self._open.set()
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])

    def _call(self, fn: Any) -> None:
        async def run() -> None:
            fn()
        asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)

    def cut(self, mode: str) -> None:
        """Cut the path (``rst`` or ``blackhole``) until :meth:`restore`."""
        if mode not in ("rst", "blackhole"):
            raise ValueError(f"cut mode must be rst or blackhole, not {mode!r}")

        def apply() -> None:
            assert self._open is not None
            self.mode = mode
            self.cuts += 1
            self._open.clear()
            if mode == "rst":
                for client, server in list(self._pairs):
                    _reset(client)
                    if server is not None:
                        _reset(server)
                self._pairs.clear()

        self._call(apply)

    def restore(self) -> None:
        def apply() -> None:
            assert self._open is not None
            self.mode = None
            self._open.set()

        self._call(apply)

    def close(self) -> None:
        if not self._thread.is_alive():
            return

        def stop() -> None:
            if self._server is not None:
                self._server.close()
            for client, server in list(self._pairs):
                client.transport.abort()
                if server is not None:
                    server.transport.abort()
            self._pairs.clear()
            self._loop.call_soon(self._loop.stop)

        try:
            self._call(stop)
        except Exception:  # noqa: BLE001 - closing on the way out; the thread is a daemon
            pass
        self._thread.join(5)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._open is not None
        if self.mode == "rst":
            _reset(writer)
            return
        await self._open.wait()  # blackhole: accepted, then nothing until the cut ends
        if self.mode == "rst":
            _reset(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        except OSError:
            _reset(writer)
            return
        pair = (writer, up_writer)
        self._pairs.add(pair)
        try:
            await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))
        finally:
            self._pairs.discard(pair)
            for w in (writer, up_writer):
                if not w.transport.is_closing():
                    w.transport.abort()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._open is not None
        try:
            while True:
                await self._open.wait()
                data = await reader.read(65536)
                if not data:
                    break
                await self._open.wait()  # read before the cut: held back, like a dropped segment
                if writer.transport.is_closing():
                    break
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            if not writer.transport.is_closing():
                try:
                    writer.write_eof()
                except (OSError, RuntimeError):
                    writer.transport.abort()
