"""What the orders component does about its exposure on the exchanges when the kernel stops, and
for ``hrkernel orders cancel-all`` / the dashboard's cancel-all action.

- :func:`wait_for_placements`: new orders are halted; wait until no placement is under way (an
  order this process is working on while it is PREPARED, SUBMITTING or UNKNOWN), so that the
  cancel step sees every order the exchange will ever hold from this tenure.
- :func:`cancel_open_orders`: cancel every open order on each exchange that this kernel placed
  (the journal knows it, or its client order id is one our pipeline makes), then verify each
  journaled one so its final state and fills are recorded. Orders placed by hand on the same
  account are left alone.
- :func:`close_positions`: flatten the net position this kernel's own filled orders built per
  market with one market order each (amount rounded down to the market's step).

Each returns an :class:`ExposureReport`; nothing here raises for one order's failure (it is
counted and logged), so one stuck order never hides what happened to the others.
"""

from __future__ import annotations

import re
import uuid
from decimal import Decimal
from typing import Any

import anyio
import msgspec

from hrkernel.exchange import errors as ex
from hrkernel.exchange.types import OrderType, Side
from hrkernel.logging import get_logger
from hrkernel.orders.journal import OrderState
from hrkernel.orders.pipeline import Signal, TransactionVerificationPipeline

__all__ = ["ExposureReport", "cancel_open_orders", "close_positions", "wait_for_placements"]

log = get_logger("hrkernel.orders.exposure")

OUR_CLIENT_ID = re.compile(r"hr[0-9a-f]{30}")
"""The client order ids :func:`hrkernel.orders.pipeline.client_order_id_for` makes."""

_PLACING = frozenset({OrderState.PREPARED, OrderState.SUBMITTING, OrderState.UNKNOWN})

SHUTDOWN_HALT = "shutdown"
"""The halt key set while the kernel shuts down (new orders refused)."""


class ExposureReport(msgspec.Struct, kw_only=True):
    """What one exposure action did: counts, and one line per order that did not go to plan."""

    action: str
    done: int = 0
    """Orders cancelled (or placed, for close)."""
    already_closed: int = 0
    """Orders found filled or gone when the cancel arrived."""
    failed: int = 0
    problems: list[str] = msgspec.field(default_factory=list)

    @property
    def outcome(self) -> str:
        return "ok" if not self.failed else "partial"

    def fail(self, what: str) -> None:
        self.failed += 1
        self.problems.append(what)


def _ours(pipeline: TransactionVerificationPipeline, exchange: str, order: Any) -> bool:
    if pipeline.journal.by_exchange_id(exchange, order.exchange_id) is not None:
        return True
    coid = order.client_order_id or ""
    return bool(OUR_CLIENT_ID.fullmatch(coid))


async def wait_for_placements(pipeline: TransactionVerificationPipeline, *, poll: float = 0.05) -> int:
    """Wait until no order is being placed by this process; returns how many were waited for.

    An order counts while its journal state is PREPARED/SUBMITTING/UNKNOWN *and* its order lock
    is held (someone is sending it or looking it up). One left PREPARED by a crash is nobody's
    work here and does not hold shutdown up (reconciliation and recovery own it)."""
    waited: set[str] = set()
    while True:
        busy = [r.client_order_id for r in pipeline.journal.open_orders()
                if r.state in _PLACING and pipeline.order_lock(r.client_order_id).locked()]
        if not busy:
            return len(waited)
        waited.update(busy)
        await anyio.sleep(poll)


async def cancel_open_orders(pipeline: TransactionVerificationPipeline, *, reason: str) -> ExposureReport:
    """Cancel this kernel's open orders on every exchange, then record their final states."""
    report = ExposureReport(action="cancel_open_orders")
    token = pipeline.lease.token
    for name, exchange in sorted(pipeline.exchanges.items()):
        try:
            open_orders = await exchange.list_open_orders()
        except Exception as exc:
            report.fail(f"{name}: open orders could not be listed ({type(exc).__name__}: {exc})")
            log.error("cancel_all_list_failed", exchange=name, error=f"{type(exc).__name__}: {exc}")
            continue
        for order in open_orders:
            if not _ours(pipeline, name, order):
                continue  # placed by hand on the same account: not ours to cancel
            try:
                await exchange.cancel_order(exchange_id=order.exchange_id, fencing_token=token)
                report.done += 1
                log.warning("order_cancelled", exchange=name, exchange_id=order.exchange_id,
                            client_order_id=order.client_order_id, symbol=order.symbol, reason=reason)
            except (ex.OrderNotCancelableError, ex.OrderNotFoundError):
                report.already_closed += 1  # filled or gone meanwhile: verification below records it
            except Exception as exc:
                report.fail(f"{name}:{order.exchange_id}: cancel failed ({type(exc).__name__}: {exc})")
                log.error("order_cancel_failed", exchange=name, exchange_id=order.exchange_id,
                          error=f"{type(exc).__name__}: {exc}")
            rec = pipeline.journal.by_exchange_id(name, order.exchange_id)
            if rec is not None and not rec.is_terminal:
                try:
                    # Records CANCELED (or FILLED) and posts the fills made before the cancel.
                    await pipeline.execute_transaction(rec)
                except Exception as exc:
                    report.fail(f"{rec.client_order_id}: not verified after the cancel ({type(exc).__name__}: {exc})")
    return report


def net_positions(pipeline: TransactionVerificationPipeline) -> dict[tuple[str, str], Decimal]:
    """(exchange, symbol) → base amount bought minus sold by this kernel's orders (all history)."""
    net: dict[tuple[str, str], Decimal] = {}
    for rec in pipeline.journal.query(limit=10_000_000):
        if rec.filled_amount:
            sign = 1 if rec.side == Side.BUY.value else -1
            key = (rec.exchange, rec.symbol)
            net[key] = net.get(key, Decimal(0)) + sign * rec.filled_amount
    return {k: v for k, v in net.items() if v}


async def close_positions(pipeline: TransactionVerificationPipeline, *, reason: str) -> ExposureReport:
    """One market order per market to bring this kernel's net position back to zero.

    The shutdown halt is lifted for these orders only (the intake is already stopped, so nothing
    else can slip in); any other halt — the kill switch, a drift halt — still refuses them."""
    report = ExposureReport(action="close_positions")
    halted = pipeline.halts.pop(SHUTDOWN_HALT, None)
    try:
        for (name, symbol), net in sorted(net_positions(pipeline).items()):
            try:
                market = await pipeline.market(name, symbol)
                amount = (abs(net) // market.amount_step) * market.amount_step
                if amount <= 0:
                    report.problems.append(f"{name}:{symbol}: position {net} is below one amount step")
                    continue
                side = Side.SELL if net > 0 else Side.BUY
                signal = Signal(signal_id=f"shutdown-close:{name}:{symbol}:{uuid.uuid4().hex[:12]}", exchange=name,
                                symbol=symbol, side=side, amount=amount, type=OrderType.MARKET)
                rec = await pipeline.submit(signal)
                report.done += 1
                log.warning("position_closed", exchange=name, symbol=symbol, side=side.value, amount=str(amount),
                            client_order_id=rec.client_order_id, state=rec.state.value, reason=reason)
            except Exception as exc:
                report.fail(f"{name}:{symbol}: position {net} not closed ({type(exc).__name__}: {exc})")
                log.error("position_close_failed", exchange=name, symbol=symbol, error=f"{type(exc).__name__}: {exc}")
    finally:
        if halted is not None:
            pipeline.halts[SHUTDOWN_HALT] = halted
    return report
