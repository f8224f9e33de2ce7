"""Signals to orders: the bridge between the bus and the order pipeline.

Every accepted signal (TradingView webhook, API, a plugin publishing on the bus) arrives on the
signals topic. The router turns it into an order request and hands it to the pipeline:

- it consumes only while this instance may trade (leader with margin); a standby leaves the
  topic alone, so with a durable bus the new leader finds the signals the old one never took;
- a delivery is acknowledged only once the order's placement has a known outcome, or the
  pipeline refused it for good; a leader that dies before that leaves it to the next leader on a
  durable bus (Redis Streams, RabbitMQ), and the journal's signal-id dedupe plus the look-up
  below make any redelivery harmless. The intake's inbox is told as soon as the order is
  journaled here (this instance's journal then owns it);
- while trading is halted (start-up reconciliation not finished, kill switch, drift) the signal
  waits and is retried, it is never dropped;
- a signal accepted before this instance's trading tenure began (a standby's copy, replayed
  after a failover; or the inbox replayed after a restart) may already have been placed by the
  instance that led then, whose journal this one cannot see: its order starts UNKNOWN, so the
  pipeline looks the client order id up on the exchange before placing anything;
- ``percent`` sizes and ``close`` are resolved against the ledger's balances for the venue,
  rounded down to the market's amount step.

Each order executes in a task of its own. Sending it holds one of ``max_concurrent`` execution
slots, until the exchange has acknowledged it; its verification then runs in the pipeline's own
pool (``[orders] verify_concurrency``), so a slow verification never holds back the next signal.
A signal that finds an execution slot free
holds it from prepare on: its order leaves at once, so the pipeline journals PREPARED and
SUBMITTING in one commit. One that must wait for a slot is journaled PREPARED and waits;
SUBMITTING is committed when it leaves.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import ROUND_DOWN, Decimal
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup

from hrkernel.bus.events import SignalAction, SignalEvent
from hrkernel.exchange.types import OrderType, Side
from hrkernel.kernel.component import Component, ShutdownStage
from hrkernel.logging import get_logger
from hrkernel.orders.errors import (
    JournalError,
    NotLeaderError,
    OrderRejectedError,
    TradingHaltedError,
)
from hrkernel.orders.faults import fault_point
from hrkernel.orders.journal import OrderState
from hrkernel.orders.pipeline import Signal, client_order_id_for

if TYPE_CHECKING:
    from hrkernel.kernel.kernel import Kernel

log = get_logger("hrkernel.routing")

KILL_SWITCH = "kill_switch"
"""The halt key the dashboard's kill switch sets on the pipeline."""

GROUP = "orders"
"""The consumer group of the order path on the signals topic."""


class SignalRejected(Exception):
    """The signal cannot become an order (says why); it is acknowledged and not retried."""


class SignalRouter(Component):
    name = "signal_router"
    shutdown_stage = ShutdownStage.STOP_INTAKE

    def __init__(
        self, *, bus: Any, orders: Any, topic: str, exchanges: list[str], max_concurrent: int = 16,
        retry_delay: float = 0.5, on_settled: Callable[[str], Awaitable[None]] | None = None,
        on_unsettled: Callable[[str], None] | None = None,
        outcomes: Callable[[], Any] | None = None,
    ) -> None:
        self.bus = bus
        self.outcomes = outcomes
        """The signals' outcome table (``hrkernel.signals.outcomes``), when the intake runs."""
        self.on_settled = on_settled
        self.on_unsettled = on_unsettled
        """Told each signal id whose order was journaled or refused for good (the intake's inbox)."""
        self.orders = orders
        self.topic = topic
        self.exchanges = exchanges
        self.retry_delay = retry_delay
        # A slot is held through verification (up to verify_deadline for a resting order) and a
        # look-up's visibility window: with 4, a new leader's first fresh signal waited behind the
        # look-ups of signals accepted before its tenure (bench/test_bench_failover.py).
        self._limiter = anyio.CapacityLimiter(max_concurrent)
        self._stopping = anyio.Event()
        self.tenure_started: datetime | None = None
        """When this instance last started consuming as leader (wall clock, UTC)."""
        self.stats = {"received": 0, "journaled": 0, "rejected": 0, "duplicates": 0, "retried": 0}

    async def start(self, tg: TaskGroup) -> None:
        tg.start_soon(self._run, tg, name="signal_router")

    async def stop(self) -> None:
        self._stopping.set()

    # -- consuming -------------------------------------------------------------------------------

    def _may_trade(self) -> bool:
        pipeline = self.orders.pipeline
        return pipeline is not None and pipeline.lease.holds_with_margin()

    async def _run(self, tg: TaskGroup) -> None:
        trading = False
        while not self._stopping.is_set():
            if not self._may_trade():
                trading = False
                with anyio.move_on_after(self.retry_delay):
                    await self._stopping.wait()
                continue
            if not trading:
                trading = True
                self.tenure_started = datetime.now(UTC)
            try:
                await self._consume(tg)
            except Exception as exc:  # a broken subscription must not end the order path
                log.error("signal_router_failed", error=f"{type(exc).__name__}: {exc}")
                with anyio.move_on_after(1.0):
                    await self._stopping.wait()

    async def _consume(self, tg: TaskGroup) -> None:
        async with self.bus.subscribe(self.topic, GROUP) as subscription:
            async for delivery in subscription:
                if self._stopping.is_set():
                    return
                await self._handle(delivery, tg)
                if not self._may_trade():
                    return  # leadership lost: leave the rest of the topic to the new leader

    async def _handle(self, delivery: Any, tg: TaskGroup) -> None:
        event = delivery.event
        if not isinstance(event, SignalEvent):
            log.warning("signal_router_ignored", topic=self.topic, kind=type(event).__name__)
            await self._ack(delivery, "")
            return
        self.stats["received"] += 1
        if os.environ.get("HRKERNEL_FAULT_POINT") == "signal_received":
            # Test-only: crash between the 200 and the journal, after the intake's own bookkeeping
            # for the publish has surely landed, so the test cannot pass by winning a race.
            await anyio.sleep(0.5)
            fault_point("signal_received")
        while not self._stopping.is_set():
            try:
                record, slot = await self._prepare_with_slot(event)
            except TradingHaltedError as exc:
                self.stats["retried"] += 1
                log.info("signal_waiting", signal_id=event.signal_id, reason=str(exc))
                with anyio.move_on_after(self.retry_delay):
                    await self._stopping.wait()
                continue
            except NotLeaderError:
                # Not acknowledged: a durable bus hands it to the leader; the memory bus's intake
                # publishes it again once this instance (or its successor here) trades.
                if self.on_unsettled is not None:
                    self.on_unsettled(event.signal_id)
                return
            except (SignalRejected, OrderRejectedError) as exc:
                self.stats["rejected"] += 1
                log.warning("signal_rejected", signal_id=event.signal_id, reason=str(exc))
                await self._refused(event, str(exc))
                await self._settled(event.signal_id)
                await self._ack(delivery, event.signal_id)
                return
            self.stats["journaled"] += 1
            # Started before the inbox is told (its write need not delay the request).
            tg.start_soon(self._execute, record, delivery, slot, name=f"order:{record.client_order_id}")
            await self._settled(event.signal_id)
            # The outcome row is for people: written off the event loop, after the order left
            # (an SQLite commit's tail, ~2 ms at p99 under load, must not delay the next signal).
            if self.outcomes is not None:
                await anyio.to_thread.run_sync(
                    functools.partial(self._outcome, event, "ordered", client_order_id=record.client_order_id))
            return

    def _outcome(self, event: SignalEvent, status: str, reason: str = "",
                 client_order_id: str | None = None) -> None:
        table = self.outcomes() if self.outcomes is not None else None
        if table is None:
            return
        try:
            table.record(event, status, reason, client_order_id)
        except Exception as exc:  # the summary table must not cost the order
            log.error("signal_outcome_write_failed", signal_id=event.signal_id, error=f"{type(exc).__name__}: {exc}")

    async def _refused(self, event: SignalEvent, reason: str) -> None:
        """A signal the intake accepted (its sender got a 200) became no order: record why and
        raise a warning alert, since the sender believes it was taken."""
        self._outcome(event, "refused", reason)
        pipeline = self.orders.pipeline
        if pipeline is not None:
            await pipeline.alert("warning", "signal refused after it was accepted", signal_id=event.signal_id,
                                 symbol=event.symbol, reason=reason)

    def _refuse_stale_or_killed(self, event: SignalEvent, pipeline: Any) -> None:
        """Signals are instructions for now: one older than ``signal_max_age`` is refused, and so
        is one arriving under the kill switch (unless ``on_kill_switch = "wait"``)."""
        cfg = pipeline.config
        max_age = float(cfg.signal_max_age)
        sent = event.time if event.time.tzinfo else event.time.replace(tzinfo=UTC)
        age = (datetime.now(UTC) - sent).total_seconds()
        if max_age > 0 and age > max_age:
            raise SignalRejected(f"stale: the signal is {age:.0f} s old, more than signal_max_age {max_age:.0f} s")
        killed = cfg.kill_switch or KILL_SWITCH in pipeline.halts
        if killed and cfg.on_kill_switch == "refuse":
            why = pipeline.halts.get(KILL_SWITCH) or "[orders] kill_switch"
            raise SignalRejected(f"the kill switch is on ({why}); signals are refused, not queued")

    async def _prepare_with_slot(self, event: SignalEvent) -> tuple[Any, object | None]:
        """Prepare ``event``'s order, holding an execution slot for it if one is free now: the
        order then leaves at once, so the pipeline journals PREPARED and SUBMITTING in one commit.
        Without a free slot it is journaled PREPARED and waits for one."""
        slot: object | None = object()
        try:
            self._limiter.acquire_on_behalf_of_nowait(slot)
        except anyio.WouldBlock:
            slot = None
        try:
            return await self.prepare(event, submit=slot is not None), slot
        except BaseException:
            if slot is not None:
                self._limiter.release_on_behalf_of(slot)
            raise

    async def _ack(self, delivery: Any, signal_id: str) -> None:
        """Acknowledge a bus delivery. A bus that cannot be reached right now (Redis cut off or
        restarting) must not take the kernel down: the delivery stays pending, the bus hands it
        out again and the journal's signal-id dedupe keeps it to one order."""
        try:
            await delivery.ack()
        except Exception as exc:
            log.warning("signal_ack_failed", signal_id=signal_id, error=f"{type(exc).__name__}: {exc}")

    async def _settled(self, signal_id: str) -> None:
        """This instance's journal holds the order (or its refusal): the intake's inbox may let go."""
        if self.on_settled is not None:
            try:
                await self.on_settled(signal_id)
            except Exception as exc:  # the order is journaled; a replay would be deduped anyway
                log.warning("signal_settle_failed", signal_id=signal_id, error=f"{type(exc).__name__}: {exc}")

    async def _execute(self, record: Any, delivery: Any, slot: object | None = None) -> None:
        # The bus delivery is acknowledged only once the placement's outcome is known. A journal
        # is per instance: if this leader dies between journal and exchange, a durable bus hands
        # the signal to the next leader, which finds it UNKNOWN (accepted before its tenure),
        # looks the client order id up on the exchange and places it only if it is not there.
        if slot is None:
            slot = object()
            await self._limiter.acquire_on_behalf_of(slot)
        held = [slot]

        def release() -> None:
            # Once the exchange has the order (or execution ended): verification runs in the
            # pipeline's own pool and must not keep the next signal from being sent.
            if held:
                self._limiter.release_on_behalf_of(held.pop())

        try:
            final = await self.orders.pipeline.execute_transaction(record, on_acked=release)
        except NotLeaderError as exc:
            log.warning("order_left_to_the_leader", client_order_id=record.client_order_id, reason=str(exc))
            return
        except Exception as exc:  # the journal holds the order; recovery/reconciliation resume it
            log.error("order_execution_failed", client_order_id=record.client_order_id,
                      error=f"{type(exc).__name__}: {exc}")
            return
        finally:
            release()
        self._position_moved(final)
        await self._ack(delivery, record.signal_id)

    def _position_moved(self, final: Any) -> None:
        """Credit the order's fills to the strategy of its signal (see :meth:`to_signal`'s close)."""
        table = self.outcomes() if self.outcomes is not None else None
        if table is None or final is None or not final.filled_amount:
            return
        try:
            table.set_filled(final.signal_id, str(final.side), final.filled_amount)
        except Exception as exc:
            log.error("signal_outcome_write_failed", signal_id=final.signal_id, error=f"{type(exc).__name__}: {exc}")

    # -- turning a signal into an order request ---------------------------------------------------

    def exchange_for(self, event: SignalEvent) -> str:
        if event.exchange in self.exchanges:
            return event.exchange
        if len(self.exchanges) == 1:
            return self.exchanges[0]
        raise SignalRejected(
            f"signal names exchange {event.exchange!r}; configured exchanges are {', '.join(self.exchanges)}"
        )

    async def prepare(self, event: SignalEvent, *, submit: bool = False) -> Any:
        """Journal the order for ``event`` (PREPARED; with ``submit``, PREPARED and SUBMITTING in
        one commit when it may leave at once) and return its record."""
        pipeline = self.orders.pipeline
        if pipeline is None:
            raise TradingHaltedError("the order pipeline has not started")
        exchange = self.exchange_for(event)
        existing = pipeline.journal.by_signal(event.signal_id)
        if existing is not None:
            self.stats["duplicates"] += 1
            return existing
        self._refuse_stale_or_killed(event, pipeline)
        signal = await self.to_signal(event, exchange)
        elsewhere = self._maybe_placed_elsewhere(event)
        try:
            record = await pipeline.create_transaction(signal, submit=submit and not elsewhere)
        except JournalError:
            # Its client order id is journaled under another signal id: the order was adopted
            # from the exchange (an orphan, or placed by a predecessor after its last replicated
            # row) before this delivery came again. It is that order; nothing is placed twice.
            adopted = pipeline.journal.get(client_order_id_for(exchange, event.signal_id))
            if adopted is None:
                raise
            self.stats["duplicates"] += 1
            log.info("signal_order_adopted_earlier", signal_id=event.signal_id, client_order_id=adopted.client_order_id)
            return adopted
        if record.state is OrderState.PREPARED and elsewhere:
            # Another instance may have led when this signal arrived (every kernel of a pair gets
            # the webhook; journals are per instance) and placed its order: UNKNOWN makes the
            # pipeline look the client order id up on the exchange before any placement.
            record = await pipeline.journal.record(
                record.client_order_id, OrderState.UNKNOWN,
                reason="signal accepted before this trading tenure began; looking it up before placing",
            )
        return record

    def _maybe_placed_elsewhere(self, event: SignalEvent) -> bool:
        received = event.received_at
        if received is None or self.tenure_started is None:
            return False
        if received.tzinfo is None:
            received = received.replace(tzinfo=UTC)
        return received < self.tenure_started

    async def to_signal(self, event: SignalEvent, exchange: str) -> Signal:
        pipeline = self.orders.pipeline
        market = await pipeline.market(exchange, event.symbol)
        order_type = OrderType.LIMIT if event.order_type == "limit" else OrderType.MARKET
        if order_type is OrderType.LIMIT and event.price is None:
            raise SignalRejected("a limit order needs a price")
        side = Side.SELL if event.action in (SignalAction.SELL, SignalAction.CLOSE) else Side.BUY
        amount = event.amount
        if event.action is SignalAction.CLOSE and event.amount is None:
            # A strategy owns what its signals bought: close sells that position (all of it, or
            # `percent` of it), never the rest of the account.
            table = self.outcomes() if self.outcomes is not None else None
            if table is None:
                raise SignalRejected("close needs the signal intake's position records; none run here")
            held = table.position(exchange, event.strategy, event.symbol)
            owner = f"strategy {event.strategy!r}" if event.strategy else "signals without a strategy"
            if held <= 0:
                raise SignalRejected(f"nothing to close: {owner} holds no {market.base} on {exchange} ({event.symbol})")
            percent = Decimal(100) if event.percent is None else Decimal(event.percent)
            amount = held * percent / 100
        elif event.percent is not None:
            balances = pipeline.ledger.venue_balances(exchange)
            percent = Decimal(100) if event.percent is None else Decimal(event.percent)
            if not Decimal(0) < percent <= Decimal(100):
                raise SignalRejected(f"percent must be in (0, 100], got {percent}")
            if side is Side.SELL:
                amount = balances.get(market.base, Decimal(0)) * percent / 100
            else:
                price = event.price or await self._best_ask(exchange, event.symbol)
                amount = balances.get(market.quote, Decimal(0)) * percent / 100 / price
        if amount is None:
            raise SignalRejected("the signal has neither an amount nor a percent")
        amount = (amount / market.amount_step).to_integral_value(ROUND_DOWN) * market.amount_step
        if amount <= 0:
            raise SignalRejected(f"nothing to {side.value}: the amount rounds down to 0 ({market.base})")
        return Signal(
            signal_id=event.signal_id, exchange=exchange, symbol=event.symbol, side=side,
            amount=amount, type=order_type, price=event.price,
        )

    async def _best_ask(self, exchange: str, symbol: str) -> Decimal:
        book = await self.orders.pipeline._exchange(exchange).order_book(symbol)
        if not book.asks:
            raise SignalRejected(f"no ask in the {symbol} book to size a percent buy")
        return Decimal(book.asks[0].price)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": "routing", "topic": self.topic, "exchanges": self.exchanges}


def build_routing(kernel: Kernel) -> None:
    """Kernel builder (after orders and signals): route bus signals into the order pipeline."""
    bus, orders = kernel.get("bus"), kernel.get("orders")
    if bus is None or orders is None:
        return
    webhook = getattr(kernel.config, "webhook", None)
    topic = getattr(webhook, "topic", "signals")
    signals = kernel.get("signals")
    intake = getattr(signals, "intake", None)
    bus = getattr(bus, "bus", bus)
    # The router consumes only while this instance may trade, but the webhook accepts (and the
    # intake publishes) from start-up on, and a standby's signals wait for the next leader: the
    # bus must keep them for the order path's group before it first subscribes (RabbitMQ drops
    # a message no queue is bound for, and the intake's inbox lets go of a signal once published).
    bus.require_group(topic, GROUP)
    kernel.add(SignalRouter(bus=bus, orders=orders, topic=topic,
                            exchanges=[item.id for item in kernel.plugin_config.exchanges],
                            on_settled=intake.confirm if intake is not None else None,
                            on_unsettled=intake.unsettled if intake is not None else None,
                            outcomes=(lambda: signals.outcomes) if signals is not None else None))
