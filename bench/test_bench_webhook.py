"""TradingView webhook intake throughput at p99 <= 50 ms vs a bare Starlette/uvicorn hello-world.

Run: ``python -m pytest bench/test_bench_webhook.py --benchmark-only -s``.

Each server runs in its own process (one uvicorn worker, one event loop) on 127.0.0.1, logging
as ``hrkernel run`` configures it (info lines on, JSON lines, to a file); the intake is served
with the kernel's own uvicorn settings (its h11 protocol with the head deadline, no access log).
The load generator is a third process, started for each step, of keep-alive HTTP/1.1 clients on
raw asyncio streams (cheaper than any client library, so the servers are what is measured). For
each server the load is stepped through several concurrencies for ``SECONDS`` each, alternating
bare and intake step by step (``ROUNDS`` passes, both servers running throughout, so both see the
same machine). The figure is the MEDIAN over the load steps whose p99 latency is <= 50 ms on
both servers of the per-step ratio intake req/s / bare req/s (each step paired with the bare step
just before it), not the best step: on a shared machine single steps range widely. The intake does
its real work for each request: checks, normalisation, a durable inbox append (group-committed
fsync on the data disk), an info log line and a publish on the memory bus, with unique signal ids
(no duplicates). Not measured here: the dashboard's guard middleware in front of the route in a
full kernel. Target (issue 8): intake >= 40% of the bare ceiling. Results in
``bench/results/webhook.json``.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

RESULTS_FILE = Path(__file__).resolve().parent / "results" / "webhook.json"
SECONDS = 1.5
CONCURRENCY = [1, 4, 16, 32, 64]
ROUNDS = 2
P99_LIMIT_MS = 50.0
TARGET = 0.40

SERVER = textwrap.dedent('''
    import socket, sys, anyio, uvicorn
    from pathlib import Path
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    mode, data_dir, log_path = sys.argv[1], sys.argv[2], sys.argv[3]
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that declare it, and
    # without it keep-alive answers wait ~40 ms for the delayed ACK (Nagle).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0)); sock.listen(1024)

    async def hello(request):
        return PlainTextResponse("hello, world")

    async def main():
        extra = {}
        async with anyio.create_task_group() as tg:
            if mode == "bare":
                app = Starlette(routes=[Route("/webhooks/tradingview", hello, methods=["POST"])])
            else:
                from hrkernel.bus.memory import MemoryBus
                from hrkernel.signals.config import WebhookSection
                from hrkernel.signals.intake import WebhookIntake
                bus = MemoryBus(queue_size=100_000)
                sub = bus.subscribe("signals", "orders")
                async def drain():
                    async for d in sub:
                        await d.ack()
                tg.start_soon(drain)
                intake = WebhookIntake(WebhookSection(enabled=True, secret="bench-secret-123"),
                                       Path(data_dir) / "inbox.jsonl", bus)
                intake.inbox.open()
                tg.start_soon(intake.run_processor)
                app = Starlette(routes=intake.routes())
                # As the kernel's dashboard serves it (hrkernel.web.app).
                from hrkernel.web.protocol import head_deadline_protocol
                extra["http"] = head_deadline_protocol(10.0)
            server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="off",
                                                   proxy_headers=False, **extra))
            print(sock.getsockname()[1], flush=True)
            await server.serve([sock])
            tg.cancel_scope.cancel()

    # The production log configuration: what `hrkernel run` calls with hr.toml's defaults.
    from hrkernel.logging import configure
    configure("info", "json", stream=open(log_path, "a", buffering=1))
    anyio.run(main)
''')

LOAD = textwrap.dedent('''
    import asyncio, json, sys, time
    port, concurrency, seconds, tag = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]

    async def client(n, lat, statuses, stop_at):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        i = 0
        while time.perf_counter() < stop_at:
            i += 1
            body = json.dumps({"secret": "bench-secret-123", "ticker": "NOBITEX:BTCIRT", "action": "buy",
                               "amount": "0.001", "strategy": "bench", "signal_id": f"{tag}-{n}-{i}"}).encode()
            req = (b"POST /webhooks/tradingview HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\nContent-Type: application/json\\r\\n"
                   b"Content-Length: " + str(len(body)).encode() + b"\\r\\n\\r\\n" + body)
            t0 = time.perf_counter()
            writer.write(req)
            head = await reader.readuntil(b"\\r\\n\\r\\n")
            length = 0
            for line in head.split(b"\\r\\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            if length:
                await reader.readexactly(length)
            lat.append(time.perf_counter() - t0)
            code = head[9:12].decode()
            statuses[code] = statuses.get(code, 0) + 1
        writer.close()

    async def main():
        lat, statuses = [], {}
        start = time.perf_counter()
        stop_at = start + seconds
        await asyncio.gather(*(client(n, lat, statuses, stop_at) for n in range(concurrency)))
        elapsed = time.perf_counter() - start
        lat.sort()
        p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000
        print(json.dumps({"concurrency": concurrency, "requests": len(lat), "rps": len(lat) / elapsed,
                          "p50_ms": p(0.50), "p99_ms": p(0.99), "statuses": statuses}))

    asyncio.run(main())
''')


def _best(steps: list[dict[str, Any]]) -> dict[str, Any] | None:
    ok = [s for s in steps if s["p99_ms"] <= P99_LIMIT_MS]
    return max(ok, key=lambda s: s["rps"]) if ok else None


def summarise(bare: list[dict[str, Any]], intake: list[dict[str, Any]]) -> dict[str, Any]:
    """Pair each intake step with the bare step at the same concurrency in the same round; keep
    pairs where both met the p99 limit; the headline is the median of their ratios."""
    pairs = [(b, i) for b, i in zip(bare, intake, strict=True) if max(b["p99_ms"], i["p99_ms"]) <= P99_LIMIT_MS]
    ratios = [i["rps"] / b["rps"] for b, i in pairs]
    every = [i["rps"] / b["rps"] for b, i in zip(bare, intake, strict=True)]
    return {
        # Beside the headline: the same median over every step, whatever its p99 (context only).
        "median_ratio_all_steps": round(statistics.median(every), 3) if every else None,
        "steps_within_p99": len(pairs), "steps": len(bare),
        "step_ratios": [round(r, 3) for r in ratios],
        "median_ratio": round(statistics.median(ratios), 3) if ratios else None,
        "median_bare_rps": round(statistics.median(b["rps"] for b, _ in pairs)) if pairs else None,
        "median_intake_rps": round(statistics.median(i["rps"] for _, i in pairs)) if pairs else None,
    }


def _measure(workdir: Path, log_path: Path) -> dict[str, Any]:
    """Both servers up at once; each concurrency step runs bare then intake, ROUNDS times, so
    both see the same machine (other processes' noise lands on both)."""
    server_py = workdir / "server.py"
    load_py = workdir / "load.py"
    server_py.write_text(SERVER)
    load_py.write_text(LOAD)
    procs: dict[str, subprocess.Popen[str]] = {}
    ports: dict[str, int] = {}
    steps: dict[str, list[dict[str, Any]]] = {"bare": [], "intake": []}
    try:
        for mode in ("bare", "intake"):
            data = workdir / f"data-{mode}"
            data.mkdir()
            procs[mode] = subprocess.Popen([sys.executable, str(server_py), mode, str(data), str(log_path)], stdout=subprocess.PIPE, text=True)
            assert procs[mode].stdout is not None
            ports[mode] = int(procs[mode].stdout.readline())  # type: ignore[union-attr]
        time.sleep(0.3)
        for round_no in range(ROUNDS):
            for c in CONCURRENCY:
                for mode in ("bare", "intake"):
                    out = subprocess.run([sys.executable, str(load_py), str(ports[mode]), str(c), str(SECONDS),
                                          f"{mode}{round_no}-{c}"],
                                         capture_output=True, text=True, timeout=SECONDS + 60, check=True)
                    step = json.loads(out.stdout)
                    assert set(step["statuses"]) == {"200"}, step
                    steps[mode].append({k: round(v, 2) if isinstance(v, float) else v for k, v in step.items()})
    finally:
        for proc in procs.values():
            proc.terminate()
            proc.wait(10)
    return {mode: {"steps": s, "best": _best(s)} for mode, s in steps.items()}


def test_bench_webhook_intake_vs_bare_starlette(benchmark: Any, production_logging: Path) -> None:
    def run() -> dict[str, Any]:
        with tempfile.TemporaryDirectory(dir=str(Path.home()) if Path.home().is_dir() else None) as d:
            return _measure(Path(d), production_logging.with_name("webhook-servers.log"))

    result = benchmark.pedantic(run, rounds=1, iterations=1)
    summary = summarise(result["bare"]["steps"], result["intake"]["steps"])
    ratio = summary["median_ratio"]
    data = {
        "p99_limit_ms": P99_LIMIT_MS, "seconds_per_step": SECONDS, "summary": summary, **result,
        "ratios": [{"label": "webhook intake vs bare Starlette/uvicorn hello-world (req/s at p99 <= 50 ms, "
                             f"median of {summary['steps_within_p99']}/{summary['steps']} paired load steps)",
                    "ours": f"intake {summary['median_intake_rps']} req/s",
                    "peer": f"bare {summary['median_bare_rps']} req/s", "ratio": ratio, "min_ratio": TARGET,
                    "met": ratio is not None and ratio >= TARGET}],
    }
    benchmark.extra_info.update(summary)
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps(data, indent=2) + "\n")
    print("\n" + json.dumps(data, indent=2))


def test_summary_is_the_median_of_paired_steps_within_the_latency_limit() -> None:
    """Runs without --benchmark-only too: the headline is the median step ratio, not the best
    step, and a step where either server broke the p99 limit is left out."""
    bare = [{"rps": 1000.0, "p99_ms": 5.0}, {"rps": 1000.0, "p99_ms": 5.0}, {"rps": 1000.0, "p99_ms": 5.0},
            {"rps": 1000.0, "p99_ms": 80.0}]
    intake = [{"rps": 200.0, "p99_ms": 9.0}, {"rps": 700.0, "p99_ms": 9.0}, {"rps": 300.0, "p99_ms": 9.0},
              {"rps": 900.0, "p99_ms": 9.0}]
    summary = summarise(bare, intake)
    assert summary["median_ratio"] == 0.3 and summary["steps_within_p99"] == 3
    assert summary["median_ratio_all_steps"] == 0.5
