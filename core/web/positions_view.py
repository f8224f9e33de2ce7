"""The positions panel: each strategy's position with its value now and its P&L.

Amounts come from the signal outcomes (``hrkernel.signals.outcomes``: what each strategy's
orders filled); money comes from the ledger, exactly: the quote currency the strategy's orders
paid and received is the sum of their fills' postings on ``<exchange>:<QUOTE>`` (fees in the
quote currency included). Value is the position at the book's mid price; P&L is value plus the
net quote flow (what was received minus what was paid), so a closed position shows its realised
P&L and an open one its unrealised P&L at the mid.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from hrkernel.web.adapters import Host, find

_MID_TTL = 5.0
_mids: dict[tuple[str, str], tuple[float, Decimal | None]] = {}
"""(exchange, symbol) → (when read, mid): the panel refreshes every second; the book need not."""


async def _mid(pipeline: Any, exchange: str, symbol: str) -> Decimal | None:
    key = (exchange, symbol)
    cached = _mids.get(key)
    if cached is not None and time.monotonic() - cached[0] < _MID_TTL:
        return cached[1]
    mid: Decimal | None = None
    try:
        book = await pipeline.order_book(exchange, symbol)
        if book.bids and book.asks:
            mid = (Decimal(book.bids[0].price) + Decimal(book.asks[0].price)) / 2
    except Exception:  # an exchange that cannot answer: value unknown, never made up
        mid = None
    _mids[key] = (time.monotonic(), mid)
    return mid


def _plain(value: Decimal) -> str:
    """Positional notation without trailing zeros: 0.002, 115105590440 (never 1.15E+11)."""
    return "0" if value == 0 else format(value.normalize(), "f")


def _quote_flow(ledger: Any, exchange: str, quote: str, orders: list[str]) -> Decimal:
    if not orders:
        return Decimal(0)
    marks = ",".join("?" for _ in orders)
    row = ledger.connection.cursor().execute(
        "SELECT coalesce(sum(p.amount), 0) FROM ledger_posting p JOIN ledger_tx t ON t.tx_id = p.tx_id "
        f"WHERE t.kind = 'fill' AND t.order_ref IN ({marks}) AND p.account = ?",
        [*orders, f"{exchange}:{quote}"]).fetchone()
    return Decimal(row[0]) if row else Decimal(0)


async def read_strategy_positions(host: Host) -> list[dict[str, Any]] | None:
    signals, orders = find(host, "signals"), find(host, "orders")
    table = getattr(signals, "outcomes", None) if signals is not None else None
    pipeline = getattr(orders, "pipeline", None) if orders is not None else None
    if table is None or pipeline is None:
        return None
    out = []
    for p in table.positions(include_closed=True):
        market = await pipeline.market(p.exchange, p.symbol)
        flow = _quote_flow(pipeline.ledger, p.exchange, market.quote, p.orders)
        mid = await _mid(pipeline, p.exchange, p.symbol) if p.amount else Decimal(0)
        value = None if mid is None else (p.amount * mid).quantize(market.price_step)
        pnl = None if value is None else (value + flow).quantize(market.price_step)
        out.append({
            "exchange": p.exchange, "strategy": p.strategy or "(none)", "symbol": p.symbol,
            "amount": _plain(p.amount), "base": market.base,
            "quote": market.quote, "mid": None if mid is None or not p.amount else _plain(mid.quantize(market.price_step)),
            "value": None if value is None else _plain(value), "pnl": None if pnl is None else _plain(pnl),
            "orders": len(p.orders),
        })
    return out
