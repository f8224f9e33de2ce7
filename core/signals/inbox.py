"""The durable signal inbox: an append-only JSON-lines file, fsynced before the webhook replies.

Why a file and not DuckDB: the intake must answer TradingView within 3 s under bursts, and one
``write + fsync`` per *batch* of concurrent requests (group commit) is the cheapest durable write
there is; DuckDB's single-writer file would also contend with the journal and ledger. Records:

- ``{"op": "accept", "signal": {...}}`` — written (and fsynced) before the 200;
- ``{"op": "done", "id": "..."}`` — once the signal was handed to the bus.

On open the file is replayed: accepted-but-not-done signals are pending again (a crash after the
200 still processes them), a torn last line (crash mid-write) is ignored, and records older than
the retention are dropped by rewriting the file atomically (temp file + rename).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import anyio
import msgspec

from hrkernel.bus.events import SignalEvent
from hrkernel.logging import get_logger

log = get_logger("hrkernel.signals.inbox")


class _Record(msgspec.Struct, omit_defaults=True):
    op: str
    signal: SignalEvent | None = None
    id: str | None = None
    at: float = 0.0


_enc = msgspec.json.Encoder(decimal_format="string")
_dec = msgspec.json.Decoder(_Record)


class SignalInbox:
    def __init__(self, path: Path, *, retention: float = 7 * 86400.0, clock: Callable[[], float] | None = None) -> None:
        import time

        self.path = path
        self.retention = retention
        self._clock = clock or time.time
        self.pending: dict[str, SignalEvent] = {}
        self.seen: dict[str, float] = {}
        """Signal id -> when accepted (unix time), for deduplication."""
        self._fd: int | None = None
        self.batches = 0
        """How many write+fsync batches were made (group commit: fewer than appends under load)."""
        self._queue: list[bytes] = []
        self._queued = 0
        self._durable = 0
        self._failed = (0, 0)
        self._lock = anyio.Lock()

    # ------------------------------------------------------------------ open / replay
    def open(self) -> None:
        """Replay and compact the file, then open it for appending (call once, at start)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        accepted: dict[str, tuple[float, SignalEvent]] = {}
        done: set[str] = set()
        torn = 0
        if self.path.exists():
            with self.path.open("rb") as f:
                for line in f:
                    try:
                        rec = _dec.decode(line)
                    except msgspec.DecodeError:
                        torn += 1
                        continue
                    if rec.op == "accept" and rec.signal is not None:
                        accepted[rec.signal.signal_id] = (rec.at, rec.signal)
                    elif rec.op == "done" and rec.id is not None:
                        done.add(rec.id)
        if torn:
            log.warning("signal_inbox_torn_lines", path=str(self.path), count=torn)
        cutoff = self._clock() - self.retention
        keep = {sid: v for sid, v in accepted.items() if sid not in done or v[0] >= cutoff}
        self.pending = {sid: sig for sid, (_, sig) in keep.items() if sid not in done}
        self.seen = {sid: at for sid, (at, _) in keep.items()}
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        with tmp.open("wb") as f:
            for sid, (at, sig) in keep.items():
                f.write(_enc.encode(_Record("accept", signal=sig, at=at)) + b"\n")
                if sid in done:
                    f.write(_enc.encode(_Record("done", id=sid)) + b"\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        if self.pending:
            log.info("signal_inbox_replayed", pending=len(self.pending))

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    # ------------------------------------------------------------------ writes
    def _write_sync(self, batch: list[bytes]) -> None:
        assert self._fd is not None, "open() the inbox first"
        data = b"".join(batch)
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        os.fsync(self._fd)

    async def _append(self, line: bytes) -> None:
        # Group commit: whoever holds the lock writes everything queued so far with one fsync;
        # the others find their line already durable when they get the lock.
        self._queue.append(line)
        self._queued += 1
        mine = self._queued
        async with self._lock:
            lo, hi = self._failed
            if lo < mine <= hi:
                raise OSError("the signal inbox could not be written (see the earlier error)")
            if self._durable >= mine:
                return
            batch, self._queue = self._queue, []
            start, upto = self._durable, self._queued
            try:
                self.batches += 1
                await anyio.to_thread.run_sync(self._write_sync, batch)
            except BaseException:
                self._failed = (start, upto)  # every line of this batch failed, not only mine
                self._durable = upto
                raise
            self._durable = upto

    async def accept(self, signal: SignalEvent) -> bool:
        """Persist ``signal`` durably; False (nothing written) if its id was seen before."""
        if signal.signal_id in self.seen:
            return False
        now = self._clock()
        self.seen[signal.signal_id] = now  # claim the id first: a concurrent duplicate sees it
        try:
            await self._append(_enc.encode(_Record("accept", signal=signal, at=now)) + b"\n")
        except BaseException:
            self.seen.pop(signal.signal_id, None)
            raise
        self.pending[signal.signal_id] = signal
        return True

    def prune(self) -> int:
        """Forget processed ids older than the retention (the file shrinks at the next start)."""
        cutoff = self._clock() - self.retention
        old = [sid for sid, at in self.seen.items() if at < cutoff and sid not in self.pending]
        for sid in old:
            del self.seen[sid]
        return len(old)

    async def done(self, signal_id: str) -> None:
        await self._append(_enc.encode(_Record("done", id=signal_id)) + b"\n")
        self.pending.pop(signal_id, None)
