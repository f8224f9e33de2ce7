"""The alert invariant: every fault produced the alert it should, delivered to an operator.

The chaos kernels get one alert channel, a ``webhook`` pointed at :class:`AlertReceiver`, an
HTTP server the runner runs on 127.0.0.1: what arrives there went through the kernel's real alert
path (deduplication, grouping, the channel's retries) and is what an operator's pager would get.
The kernels' DuckDB alert history is not used: a ``duckdb_readonly`` fault makes it unwritable
and a SIGKILLed kernel's open file cannot be read.

Each fault kind has default expectations (:func:`default_expectations`); a scenario overrides
them per fault with ``expect = [...]``, or declares ``expect = []`` for a fault that is absorbed
without an alert (a single 500 the retry hides).
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from hrkernel_chaos.scenario import Expect, Fault

LEVELS = {"info": 0, "warning": 1, "error": 2, "critical": 3}

HEALTH = "^health check failing$"


def default_expectations(fault: Fault, kernels: int, failover_timeout: float) -> list[Expect]:
    """What a fault of this kind must raise when the scenario does not say (README table)."""
    if fault.expect is not None:
        return list(fault.expect)
    kind = fault.kind
    slack = 20.0
    if kind == "sim_down" or (kind == "sim_errors" and fault.endpoint == "*" and fault.rate >= 1.0
                              and fault.fault in ("error_500", "error_502", "error_503", "hang")):
        # the adapter's circuit breaker opens: the exchange's health check fails
        return [Expect(source="health", title=HEALTH, level="error", check="exchange:.*",
                       within=fault.duration + slack)]
    if kind == "kill_leader":
        if kernels > 1:
            # With `restart`, the killed kernel comes back and may win the lease itself (the soak
            # saw hr-a -> hr-a in 2.8 s): a new tenure by any kernel is the expected outcome.
            return [Expect(source="ha", title="^leadership gained$", instance="any" if fault.restart else "other",
                           within=failover_timeout + slack)]
        # one kernel, started again: it leads again (a new tenure)
        return [Expect(source="ha", title="^leadership gained$", instance="faulted", within=failover_timeout + slack)]
    if kind == "pause_leader":
        if kernels < 2:
            return []  # the local lease cannot be lost; a frozen lone kernel just resumes
        return [
            Expect(source="ha", title="^leadership lost$", level="critical", instance="faulted",
                   within=fault.duration + slack),
            Expect(source="ha", title="^leadership gained$", instance="other", within=failover_timeout + slack),
        ]
    if kind in ("redis_restart", "redis_cut"):
        expects = [Expect(source="health", title=HEALTH, level="error", check="redis_reachable",
                          instance="faulted" if fault.target in ("leader", "standby") else "any",
                          within=fault.duration + slack)]
        if fault.target != "standby" and fault.duration >= 3.0:
            # longer than lease_ttl - margin without a renewal: the leader stops trading
            expects.append(Expect(source="ha", title="^leadership lost$", level="critical", instance="faulted",
                                  within=fault.duration + slack))
        return expects
    if kind == "feed_stale":
        return [Expect(source="health", title=HEALTH, level="error", check="datasource:feed",
                       within=fault.duration + slack)]
    if kind == "duckdb_readonly":
        return [Expect(source="health", title=HEALTH, level="error", check="duckdb_writable",
                       instance="faulted" if fault.target != "all" else "any", within=fault.duration + slack)]
    # sim_script, sim_latency, partial sim_errors: retries, look-ups and reconciliation absorb them
    return []


@dataclass
class Received:
    """One alert as delivered in a notification."""

    at: float
    instance: str
    kind: str
    alert: dict[str, Any]

    @property
    def level(self) -> int:
        return LEVELS.get(str(self.alert.get("level")), -1)


@dataclass
class Injected:
    """One injected fault, for the alert invariant."""

    index: int
    what: str
    kind: str
    at: float
    faulted: list[str]
    """Kernel names the fault hit (the leader it killed, the kernels it cut off...)."""
    expects: list[Expect]
    lasts: float = 0.0
    """How long the fault lasts (s): 0 for a kill or a scripted error."""
    seen: list[tuple[Expect, Received | None]] = field(default_factory=list)


class AlertReceiver:
    """An HTTP server on 127.0.0.1 that records every notification POSTed to it."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.notifications = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                try:
                    receiver.add(json.loads(body))
                    self.send_response(200)
                except (ValueError, TypeError, AttributeError):
                    self.send_response(400)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, name="chaos-alerts", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/alerts"

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def add(self, notification: dict[str, Any]) -> None:
        now = time.time()
        instance = str(notification.get("instance_id") or "")
        kind = str(notification.get("kind") or "")
        with self._lock:
            self.notifications += 1
            for alert in notification.get("alerts") or []:
                self.received.append(Received(now, instance, kind, dict(alert)))

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.received)


def _matches(expect: Expect, got: Received, fault: Injected) -> bool:
    alert = got.alert
    if alert.get("source") != expect.source or got.level < LEVELS[expect.level]:
        return False
    if not re.search(expect.title, str(alert.get("title", ""))):
        return False
    if expect.check and not re.fullmatch(expect.check, str((alert.get("context") or {}).get("check", ""))):
        return False
    if expect.instance == "faulted" and got.instance not in fault.faulted:
        return False
    return not (expect.instance == "other" and got.instance in fault.faulted)


def find_alert(expect: Expect, fault: Injected, received: list[Received]) -> Received | None:
    """The first delivered alert that satisfies ``expect`` for ``fault``: raised within
    ``within`` s after it (kernels and runner share this machine's clock); failing that, one raised earlier that was
    still firing when the fault ended (a repeat of an open alert only bumps its count and is not
    notified again), never one resolved while the fault lasted."""
    start, end = fault.at, fault.at + expect.within
    resolved: dict[str, float] = {}
    for got in received:
        if got.alert.get("status") == "resolved":
            resolved.setdefault(str(got.alert.get("id")), float(got.alert.get("resolved_at") or got.at))
    earlier: Received | None = None
    for got in received:
        if got.alert.get("status") != "firing" or not _matches(expect, got, fault):
            continue
        first = float(got.alert.get("first_seen") or got.at)
        if start <= first <= end:
            return got
        if first < start and earlier is None and \
                resolved.get(str(got.alert.get("id")), float("inf")) > fault.at + fault.lasts:
            earlier = got
    return earlier


def describe(expect: Expect) -> str:
    check = f"[{expect.check}]" if expect.check else ""
    who = "" if expect.instance == "any" else f" from the {expect.instance} kernel"
    return f"{expect.source} '{expect.title.strip('^$')}'{check} >= {expect.level}{who} within {expect.within:g}s"
