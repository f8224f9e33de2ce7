"""Message bus: publish -> deliver throughput per backend, and event encoding vs the stdlib.

Run: ``python -m pytest bench/test_bench_bus.py --benchmark-only -s``.

- memory, Redis Streams (the system Redis on 127.0.0.1:6379, a unique key prefix, deleted
  afterwards) and RabbitMQ (127.0.0.1:5672): N events published by one task while one consumer
  in one group receives and acknowledges them; messages/s from the first publish to the last ack,
  median of three runs;
- msgspec encode/decode of a 20-level order-book event vs ``json.dumps``/``json.loads`` of the
  same content as plain dicts (Decimals as strings), and vs ``json.loads`` plus building the same
  typed event by hand (the fair decode peer); ratios (peer time / ours) in ``bench/results/bus.json``.
"""

from __future__ import annotations

import json
import socket
import statistics
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest

from hrkernel.bus.base import Bus
from hrkernel.bus.events import BookEvent, BookLevel, HealthEvent, decode, encode

RESULTS_FILE = Path(__file__).resolve().parent / "results" / "bus.json"
RESULTS: dict[str, Any] = {"throughput": {}, "codec_ns": {}, "ratios": []}
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _up(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


async def _throughput(bus: Bus, n: int, topic: str | None = None) -> float:
    topic = topic or f"bench{uuid.uuid4().hex[:6]}"
    sub = bus.subscribe(topic, "g")
    received = 0
    done = anyio.Event()

    async def consume() -> None:
        nonlocal received
        async for d in sub:
            await d.ack()
            received += 1
            if received == n:
                done.set()
                return

    event = HealthEvent(time=NOW, component="bench", status="healthy")
    async with anyio.create_task_group() as tg:
        tg.start_soon(consume)
        await anyio.sleep(0.3)  # the group exists before the first publish
        started = time.perf_counter()
        for _ in range(n):
            await bus.publish(topic, event)
        with anyio.fail_after(120):
            await done.wait()
        elapsed = time.perf_counter() - started
        tg.cancel_scope.cancel()
    await sub.aclose()
    if getattr(bus, "backend", "") == "redis":
        await bus._client().delete(bus.settings.prefix + topic)  # type: ignore[attr-defined]
    return n / elapsed


def _record(name: str, rate: float, benchmark: Any) -> None:
    RESULTS["throughput"][name] = round(rate)
    benchmark.extra_info["messages_per_second"] = round(rate)
    print(f"\nbus {name}: {rate:,.0f} messages/s publish->deliver->ack")


THROUGHPUT_ROUNDS = 3


def _once(benchmark: Any, fn: Any) -> float:
    """The median messages/s of THROUGHPUT_ROUNDS runs (one run is one noisy sample)."""
    rates: list[float] = []
    benchmark.pedantic(lambda: rates.append(fn()), rounds=THROUGHPUT_ROUNDS, iterations=1)
    benchmark.extra_info["rounds_messages_per_second"] = [round(r) for r in rates]
    return statistics.median(rates)


def test_bench_bus_memory(benchmark: Any) -> None:
    from hrkernel.bus.memory import MemoryBus

    rate = _once(benchmark, lambda: anyio.run(_throughput, MemoryBus(queue_size=1000), 50_000))
    _record("memory", rate, benchmark)


def test_bench_bus_redis_streams(benchmark: Any) -> None:
    if not _up(6379):
        pytest.skip("no Redis on 127.0.0.1:6379")
    from hrkernel.bus.config import RedisBusSettings
    from hrkernel.bus.redis_streams import RedisStreamsBus

    async def run() -> float:
        bus = RedisStreamsBus(RedisBusSettings(prefix=f"hrbench:{uuid.uuid4().hex[:6]}:", block=0.1))
        try:
            return await _throughput(bus, 5_000)
        finally:
            await bus.aclose()

    _record("redis", _once(benchmark, lambda: anyio.run(run)), benchmark)


def test_bench_bus_rabbitmq(benchmark: Any) -> None:
    if not _up(5672):
        pytest.skip("no RabbitMQ on 127.0.0.1:5672")
    from hrkernel.bus.config import RabbitBusSettings
    from hrkernel.bus.rabbitmq import RabbitBus

    async def run() -> float:
        exchange = f"hrbench-{uuid.uuid4().hex[:6]}"
        bus = RabbitBus(RabbitBusSettings(exchange=exchange, prefetch=200))
        try:
            return await _throughput(bus, 2_000, topic="bench")
        finally:
            assert bus._connection is not None
            channel = await bus._connection.channel()
            await channel.queue_delete(f"{exchange}.bench.g")
            await channel.exchange_delete(exchange)
            await bus.aclose()

    _record("rabbitmq", _once(benchmark, lambda: anyio.run(run)), benchmark)


BOOK = BookEvent(
    time=NOW, source="bench", symbol="BTCIRT", sequence=1,
    bids=[BookLevel(Decimal(f"6500000000.{i}"), Decimal(f"0.{i + 1:04d}")) for i in range(20)],
    asks=[BookLevel(Decimal(f"6600000000.{i}"), Decimal(f"0.{i + 1:04d}")) for i in range(20)],
)
BOOK_DICT = {"kind": "book", "time": NOW.isoformat(), "source": "bench", "symbol": "BTCIRT", "sequence": 1,
             "bids": [[str(p.price), str(p.amount)] for p in BOOK.bids],
             "asks": [[str(p.price), str(p.amount)] for p in BOOK.asks]}
BOOK_BYTES = encode(BOOK)
BOOK_JSON = json.dumps(BOOK_DICT)


def _codec(name: str, benchmark: Any, fn: Any) -> None:
    benchmark(fn)
    RESULTS["codec_ns"][name] = round(benchmark.stats.stats.median * 1e9)


@pytest.mark.benchmark(group="bus-codec")
def test_bench_book_encode_msgspec(benchmark: Any) -> None:
    _codec("encode_msgspec", benchmark, lambda: encode(BOOK))


@pytest.mark.benchmark(group="bus-codec")
def test_bench_book_encode_json(benchmark: Any) -> None:
    _codec("encode_json", benchmark, lambda: json.dumps(BOOK_DICT).encode())


@pytest.mark.benchmark(group="bus-codec")
def test_bench_book_decode_msgspec(benchmark: Any) -> None:
    # Typed and validated: Decimals, datetime, the tagged union.
    _codec("decode_msgspec", benchmark, lambda: decode(BOOK_BYTES))


@pytest.mark.benchmark(group="bus-codec")
def test_bench_book_decode_json(benchmark: Any) -> None:
    # Untyped dicts only: no validation, prices stay strings.
    _codec("decode_json", benchmark, lambda: json.loads(BOOK_JSON))


def _json_typed() -> BookEvent:
    raw = json.loads(BOOK_JSON)
    return BookEvent(time=datetime.fromisoformat(raw["time"]), source=raw["source"], symbol=raw["symbol"],
                     sequence=raw["sequence"], bids=[BookLevel(Decimal(p), Decimal(a)) for p, a in raw["bids"]],
                     asks=[BookLevel(Decimal(p), Decimal(a)) for p, a in raw["asks"]])


@pytest.mark.benchmark(group="bus-codec")
def test_bench_book_decode_json_typed(benchmark: Any) -> None:
    # The fair peer: json.loads plus building the same typed event by hand (no validation).
    assert _json_typed() == decode(BOOK_BYTES)
    _codec("decode_json_typed", benchmark, _json_typed)


def test_bench_bus_write_results(benchmark: Any) -> None:
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    codec = RESULTS["codec_ns"]
    for op in ("encode", "decode"):
        ours, peer = codec.get(f"{op}_msgspec"), codec.get(f"{op}_json")
        if ours and peer:
            RESULTS["ratios"].append({"label": f"book event {op}: msgspec vs stdlib json", "ours": f"{op}_msgspec",
                                      "peer": f"{op}_json", "ratio": round(peer / ours, 2)})
    if codec.get("decode_msgspec") and codec.get("decode_json_typed"):
        RESULTS["ratios"].append({"label": "book event decode to typed event: msgspec vs json.loads + hand-built struct",
                                  "ours": "decode_msgspec", "peer": "decode_json_typed",
                                  "ratio": round(codec["decode_json_typed"] / codec["decode_msgspec"], 2)})
    memory = RESULTS["throughput"].get("memory")
    for backend in ("redis", "rabbitmq"):
        rate = RESULTS["throughput"].get(backend)
        if memory and rate:
            # No peer to beat: the row puts each backend's messages/s (median of its runs) in the
            # report, as a share of the in-process bus measured in the same run.
            RESULTS["ratios"].append({"label": f"bus publish->deliver->ack messages/s, {backend} vs memory "
                                               f"(median of {THROUGHPUT_ROUNDS} runs)",
                                      "ours": f"{rate:,}/s", "peer": f"{memory:,}/s", "ratio": round(rate / memory, 3)})
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps(RESULTS, indent=2) + "\n")
    print("\n" + json.dumps(RESULTS, indent=2))
