"""The TradingView webhook intake: validate, persist, reply; publish on the bus afterwards.

The request path never waits for the bus: it checks the caller, parses and normalises the body,
appends the signal to the durable inbox (group-committed fsync), answers 200 and wakes the
processor. The processor (its own task) publishes pending signals on the bus and marks them
done; a slow or failing bus only makes the inbox longer. Bad input always gets a 4xx (never a
5xx: TradingView resends on 5xx); only a failed inbox write answers 503.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from hrkernel.bus.base import Bus
from hrkernel.logging import get_logger
from hrkernel.signals.config import WebhookSection
from hrkernel.signals.inbox import SignalInbox
from hrkernel.signals.metrics import IntakeMetrics
from hrkernel.signals.normalize import (
    PayloadError,
    build_signal,
    flatten,
    parse_alertatron,
    pick,
    secret_of,
)
from hrkernel.signals.outcomes import SignalOutcomes
from hrkernel.types import parse_decimal_text

log = get_logger("hrkernel.signals")

IPNet = ipaddress.IPv4Network | ipaddress.IPv6Network


class Rejected(Exception):
    def __init__(self, status: int, reason: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.field = field

    def response(self) -> Response:
        body: dict[str, Any] = {"error": self.reason, "message": self.message}
        if self.field:
            body["field"] = self.field
        return JSONResponse(body, status_code=self.status)


def _nets(items: list[str]) -> list[IPNet]:
    return [ipaddress.ip_network(x, strict=False) for x in items]


def _in(addr: str, nets: list[IPNet]) -> bool:
    try:
        ip = ipaddress.ip_address(addr.strip())
    except ValueError:
        return False
    return any(ip in net for net in nets)


class WebhookIntake:
    REPUBLISH_AFTER = 30.0
    """Seconds after which a signal published on the memory bus but never confirmed by the order
    path is published again (it may have been dropped with a closed subscription); the order path
    dedupes by signal id, so a second copy is harmless."""

    def __init__(
        self,
        config: WebhookSection,
        inbox_path: Path,
        bus: Bus | Callable[[], Bus | None] | None = None,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.inbox = SignalInbox(inbox_path, retention=float(config.dedupe_retention), clock=clock)
        self._bus = bus
        self._clock = clock
        self._monotonic = monotonic
        self.metrics = IntakeMetrics()
        self.prometheus_registry = self.metrics.registry
        self._allowed = _nets(config.allowed_ips)
        self._proxies = _nets(config.trusted_proxies)
        self._secret = config.secret.encode()
        self._wake = anyio.Event()
        self._published: dict[str, float] = {}
        """Published on the memory bus (monotonic time), waiting for :meth:`confirm`."""
        self._to_publish: dict[str, None] | None = None
        self._received_mono: dict[str, float] = {}
        self._failures_logged: set[str] = set()
        self.outcomes: SignalOutcomes | None = None
        """Where each signal's outcome is recorded (set by the component when it starts)."""

    # ------------------------------------------------------------------ wiring
    def bus(self) -> Bus | None:
        if self._bus is None or isinstance(self._bus, Bus):
            return self._bus
        return self._bus()

    def routes(self) -> list[BaseRoute]:
        routes: list[BaseRoute] = [Route(self.config.path, self.handle, methods=["POST"], name="tradingview_webhook")]
        if self.config.url_secret:
            routes.append(Route(self.config.path.rstrip("/") + "/{secret}", self.handle, methods=["POST"]))
        return routes

    def stats(self) -> dict[str, Any]:
        return {**self.metrics.counts, "pending": len(self.inbox.pending)}

    # ------------------------------------------------------------------ request path
    def client_address(self, request: Request) -> str:
        """The caller's address: the peer, or the first untrusted hop of X-Forwarded-For when
        the peer is a trusted proxy (walking from the right, the only part a client can't forge)."""
        peer = request.client.host if request.client else ""
        if not self._proxies or not _in(peer, self._proxies):
            return peer
        hops = [h.strip() for h in request.headers.get("x-forwarded-for", "").split(",") if h.strip()]
        for hop in reversed(hops):
            if not _in(hop, self._proxies):
                return hop
        return hops[0] if hops else peer

    async def _read_body(self, request: Request) -> bytes:
        limit = self.config.max_body
        declared = request.headers.get("content-length")
        if declared is not None:
            if not (declared.isascii() and declared.isdigit()):
                raise Rejected(400, "bad_request", "Content-Length is not a number", "Content-Length")
            if int(declared) > limit:
                raise Rejected(413, "too_large", f"body of {declared} bytes exceeds the limit of {limit} bytes", "body")
        chunks: list[bytes] = []
        size = 0
        timeout = float(self.config.body_timeout)
        try:
            with anyio.fail_after(timeout):
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limit:
                        raise Rejected(413, "too_large", f"body exceeds the limit of {limit} bytes", "body")
                    chunks.append(chunk)
        except TimeoutError:
            # A stalled body would hold this task and its connection forever.
            raise Rejected(408, "body_timeout", f"the body did not arrive within {timeout:g} s", "body") from None
        return b"".join(chunks)

    def _parse(self, body: bytes) -> dict[str, Any]:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise Rejected(400, "malformed", "body is not UTF-8 text", "body") from None
        stripped = text.strip()
        if not stripped:
            raise Rejected(400, "malformed", "body is empty; expected the alert message (JSON)", "body")
        if stripped[0] in "{[":
            try:
                value = json.loads(stripped, parse_float=str, parse_int=str, parse_constant=str)
            except (ValueError, RecursionError) as exc:
                raise Rejected(400, "malformed", f"body is not valid JSON: {exc}"[:300], "body") from None
            if not isinstance(value, dict):
                raise Rejected(400, "malformed", "expected a JSON object at the top level", "body")
            return value
        try:
            parsed = parse_alertatron(stripped)
        except PayloadError as exc:
            raise Rejected(400, "schema", exc.message, exc.field) from None
        if parsed is None:
            raise Rejected(400, "malformed", "body is neither JSON nor an Alertatron command", "body")
        return parsed

    def _check_secret(self, given: str | None) -> None:
        if given is None:
            raise Rejected(401, "unauthorized", "missing secret (put \"secret\": \"...\" in the alert message)", "secret")
        if not hmac.compare_digest(given.encode("utf-8", "surrogatepass"), self._secret):
            raise Rejected(401, "unauthorized", "wrong secret", "secret")

    def _check_lag(self, fired: datetime | None, received: datetime, payload_max_lag: Any) -> None:
        if fired is None:
            if self.config.require_time:
                raise Rejected(400, "schema", "missing time (add \"time\": \"{{timenow}}\")", "time")
            return
        max_lag = float(self.config.max_lag)
        if payload_max_lag is not None:
            try:
                # ASCII decimal only: float() would also take "١٢٣", "inf" and "nan".
                max_lag = min(max_lag, float(parse_decimal_text(str(payload_max_lag))))
            except ValueError:
                raise Rejected(400, "schema", f"expected seconds, found {str(payload_max_lag)[:40]!r}", "max_lag") from None
        lag = (received - fired).total_seconds()
        if lag > max_lag:
            raise Rejected(400, "stale", f"signal is {lag:.0f} s old, more than max_lag {max_lag:.0f} s", "time")
        if -lag > max_lag:
            raise Rejected(400, "stale", f"signal time is {-lag:.0f} s in the future", "time")

    async def handle(self, request: Request) -> Response:
        self.metrics.count("received")
        try:
            return await self._handle(request)
        except Rejected as exc:
            self.metrics.count("rejected", exc.reason)
            return exc.response()
        except ClientDisconnect as exc:
            # The client went away (or the dashboard's body deadline passed) before the whole body
            # arrived: nothing was accepted. One line, no traceback; the answer goes nowhere (or
            # is replaced by the guard's 408).
            self.metrics.count("rejected", "incomplete_body")
            peer = request.client.host if request.client else "?"
            log.info("webhook_body_incomplete", client=peer, detail=str(exc) or "the client disconnected before sending the whole body")
            return JSONResponse({"error": "incomplete_body", "message": "the body did not arrive", "field": "body"}, status_code=400)

    async def _handle(self, request: Request) -> Response:
        if self.config.allowlist:
            addr = self.client_address(request)
            if not _in(addr, self._allowed):
                raise Rejected(403, "ip_not_allowed", f"address {addr} is not in the webhook allowlist", "client_address")
        body = await self._read_body(request)
        payload = self._parse(body)
        flat = flatten(payload)
        self._check_secret(request.path_params.get("secret") or secret_of(flat))
        return await self._accept(flat)

    async def submit(self, payload: dict[str, Any]) -> Response:
        """A signal from an authenticated local operator (``hrkernel signal``, ``POST
        /api/signals``): the webhook's payload fields, validation, lag check and dedupe, without
        the webhook's shared secret and allowlist (the caller's token was checked instead)."""
        self.metrics.count("received")
        try:
            return await self._accept(flatten(payload))
        except Rejected as exc:
            self.metrics.count("rejected", exc.reason)
            return exc.response()

    async def _accept(self, flat: dict[str, Any]) -> Response:
        received = datetime.fromtimestamp(self._clock(), UTC)
        try:
            signal = build_signal(
                flat, exchange=self.config.exchange, received_at=received, symbol_map=self.config.symbol_map,
                markets=self.config.markets, dedupe_bucket=float(self.config.dedupe_bucket),
            )
        except PayloadError as exc:
            raise Rejected(400, exc.reason, exc.message, exc.field) from None
        has_time = pick(flat, "time")[1] is not None
        try:
            self._check_lag(signal.time if has_time else None, received, flat.get("max_lag"))
        except Rejected as exc:
            self._outcome(signal, "refused", f"{exc.reason}: {exc.message}")
            raise
        try:
            fresh = await self.inbox.accept(signal)
        except OSError as exc:
            log.error("signal_inbox_write_failed", error=str(exc), signal_id=signal.signal_id)
            # A server fault, not bad input: 503 lets TradingView resend.
            return JSONResponse({"error": "unavailable", "message": "could not persist the signal"}, status_code=503)
        if not fresh:
            self.metrics.count("duplicate")
            return JSONResponse({"status": "duplicate", "signal_id": signal.signal_id})
        self.metrics.count("accepted")
        self._outcome(signal, "accepted")
        self._queue()[signal.signal_id] = None
        self._received_mono[signal.signal_id] = self._monotonic()
        self._wake.set()
        log.info("signal_accepted", signal_id=signal.signal_id, symbol=signal.symbol, action=signal.action.value)
        return JSONResponse({"status": "accepted", "signal_id": signal.signal_id})

    def _outcome(self, signal: Any, status: str, reason: str = "") -> None:
        if self.outcomes is None:
            return
        try:
            self.outcomes.record(signal, status, reason)
        except Exception as exc:  # the summary table must not cost the signal
            log.error("signal_outcome_write_failed", signal_id=signal.signal_id, error=f"{type(exc).__name__}: {exc}")

    # ------------------------------------------------------------------ processing
    def _queue(self) -> dict[str, None]:
        """Signal ids waiting to be published, oldest first (an ordered set). The first call
        takes everything the inbox replayed from disk."""
        if self._to_publish is None:
            self._to_publish = dict.fromkeys(self.inbox.pending)
        return self._to_publish

    async def process_pending(self) -> int:
        """Publish every signal waiting for it, oldest first; returns how many still wait.

        Only the waiting ones are visited, so the cost of a pass does not grow with the number
        of signals published and not yet confirmed.
        """
        queue = self._queue()
        bus = self.bus()
        if bus is None:
            return len(queue)
        # On a durable bus (Redis Streams, RabbitMQ) the broker holds a published signal, so the
        # inbox entry is done once published. The memory bus forgets everything in a crash: there
        # the entry stays pending until the order path confirms it journaled the order
        # (:meth:`confirm`), so a crash between publish and journal replays it on restart.
        durable = getattr(bus, "backend", "memory") != "memory"
        now = self._monotonic()
        while self._published:  # in publish order: stop at the first not due (no copy: O(due))
            sid, at = next(iter(self._published.items()))
            if now - at < self.REPUBLISH_AFTER:
                break
            del self._published[sid]
            queue[sid] = None
        for sid in list(queue):
            signal = self.inbox.pending.get(sid)
            if signal is None:  # confirmed meanwhile
                del queue[sid]
                continue
            try:
                await bus.publish(self.config.topic, signal)
            except Exception as exc:  # noqa: BLE001 - the bus is down: keep it pending, retry later
                if "publish" not in self._failures_logged:
                    log.warning("signal_publish_failed", signal_id=sid, error=str(exc))
                    self._failures_logged.add("publish")
                break
            self._failures_logged.discard("publish")
            queue.pop(sid, None)  # the order path may have confirmed it while we awaited the bus
            if durable:
                await self.inbox.done(sid)
            else:
                self._published[sid] = now
            started = self._received_mono.pop(sid, None)
            if started is not None:
                self.metrics.latency.observe(self._monotonic() - started)
            self.metrics.count("processed")
        return len(queue)

    def unsettled(self, signal_id: str) -> None:
        """The order path let go of a signal without journaling it (e.g. it lost leadership):
        publish it again at the next pass instead of waiting for :data:`REPUBLISH_AFTER`."""
        if self._published.pop(signal_id, None) is not None:
            self._queue()[signal_id] = None
        self._wake.set()

    async def confirm(self, signal_id: str) -> None:
        """The order path journaled (or refused for good) the order of ``signal_id``."""
        self._published.pop(signal_id, None)
        self._queue().pop(signal_id, None)
        if signal_id in self.inbox.pending:
            await self.inbox.done(signal_id)

    async def run_processor(self, retry_interval: float = 1.0) -> None:
        last_prune = self._monotonic()
        while True:
            try:
                remaining = await self.process_pending()
            except Exception as exc:  # a background task must never take the kernel down
                log.error("signal_processor_failed", error=f"{type(exc).__name__}: {exc}")
                remaining = 1
            if self._monotonic() - last_prune > 3600:
                self.inbox.prune()
                last_prune = self._monotonic()
            idle = self.REPUBLISH_AFTER if self._published else 3600.0
            with anyio.move_on_after(retry_interval if remaining else idle):
                await self._wake.wait()
            self._wake = anyio.Event()
