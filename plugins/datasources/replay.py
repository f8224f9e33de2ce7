"""Replay of recorded market data from a JSON-lines or CSV file (tests, demos, backfills)."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import msgspec
from anyio.abc import TaskGroup

from hrkernel.bus.events import BookEvent, Event, TickerEvent, TradeEvent
from hrkernel_datasources.base import MarketDataSource
from hrkernel_datasources.config import ReplayConfig

_MARKET = BookEvent | TradeEvent | TickerEvent
_decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(_MARKET)
_CSV_FIELDS = ("time", "symbol", "last", "best_bid", "best_ask", "price", "amount", "side", "sequence", "source")


def _kind_of(line: bytes) -> str:
    try:
        raw = msgspec.json.decode(line)
    except msgspec.DecodeError:
        return "not_json"
    kind = raw.get("kind") if isinstance(raw, dict) else None
    return kind if isinstance(kind, str) and len(kind) < 20 else "unknown"


class ReplaySource(MarketDataSource):
    """Reads ``path`` and ingests one record every ``interval``; :meth:`pause` stops updates
    (the feed goes silent while "connected" — the failure staleness detection exists for)."""

    kind = "replay"

    def __init__(self, name: str, config: ReplayConfig, *, context: Any = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(name, float(config.max_age), context=context, topic=config.topic,
                         publish=config.publish, clock=clock)
        self.config = config
        self.paused = False
        self._resume = anyio.Event()
        self._stop = anyio.Event()
        self.records_read = 0

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False
        self._resume.set()

    def records(self) -> list[Event | None]:
        """Decode the whole file; malformed records are counted and become ``None``."""
        path = Path(self.config.path)
        data = path.read_bytes()
        fmt = self.config.format
        if fmt == "auto":
            fmt = "csv" if path.suffix.lower() == ".csv" else "jsonl"
        out: list[Event | None] = []
        if fmt == "jsonl":
            for line in data.splitlines():
                if not line.strip():
                    continue
                try:
                    out.append(_decoder.decode(line))
                except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
                    self.malformed(_kind_of(line), str(exc))
                    out.append(None)
            return out
        for row in csv.DictReader(io.StringIO(data.decode("utf-8", "replace"))):
            kind = (row.get("kind") or "").strip()
            fields: dict[str, Any] = {k: v for k in _CSV_FIELDS if (v := (row.get(k) or "").strip())}
            fields.setdefault("source", self.config.source_name or "replay")
            fields["kind"] = kind
            if "sequence" in fields and fields["sequence"].isdigit():
                fields["sequence"] = int(fields["sequence"])
            try:
                out.append(msgspec.convert(fields, _MARKET, strict=False))
            except msgspec.ValidationError as exc:
                self.malformed(kind or "unknown", str(exc))
                out.append(None)
        return out

    async def start(self, tg: TaskGroup) -> None:
        self.attach_bus()
        records = self.records()
        tg.start_soon(self._run, records)

    async def _run(self, records: list[Event | None]) -> None:
        while not self._stop.is_set():
            for record in records:
                while self.paused:
                    self._resume = anyio.Event()
                    await self._resume.wait()
                if self._stop.is_set():
                    return
                if record is not None:
                    # Recorded times become "now": a replay is live data for whoever consumes it.
                    stamped = msgspec.structs.replace(record, time=datetime.now(UTC))
                    if self.config.source_name:
                        stamped = msgspec.structs.replace(stamped, source=self.config.source_name)
                    self.ingest(stamped)
                    await self.flush_to_bus()
                self.records_read += 1
                await anyio.sleep(float(self.config.interval))
            if not self.config.loop:
                return

    async def stop(self) -> None:
        self._stop.set()
        self._resume.set()
        self.paused = False
