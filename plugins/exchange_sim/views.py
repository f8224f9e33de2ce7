"""How Nobitex prints orders, trades and wallets (field names, string/int mix, ``"0E-10"``).

The docs' samples differ per endpoint and the simulator keeps the difference on purpose, so
the adapter is tested against the same mix it will meet: ``orders/add`` prints compact strings
with ``matchedAmount``/``fee`` as the int ``0`` when nothing matched; ``orders/status`` prints
10-place strings (``"3.0000000000"``, ``"0E-10"``); ``orders/list`` prints ``matchedAmount`` and
``fee`` with 10 places and the rest compact; ``update-status`` prints compact strings.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from hrkernel_sim.engine import Order, Trade
from hrkernel_sim.markets import d10, display_name, market_name, plain


def iso(ts: float) -> str:
    """``2018-11-28T11:36:13.592827+00:00``."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds")


def order_view(order: Order, *, style: str, email: str) -> dict[str, Any]:
    """``style``: ``add``, ``status``, ``update`` or ``list1``/``list2`` (details=1/2)."""
    total_order = order.amount * (order.price if order.price is not None else order.ref_price)
    if style == "status":
        num = d10
    else:
        num = plain
    price = "market" if order.execution == "Market" else num(order.price or Decimal(0))
    if style in ("list1", "list2"):
        view: dict[str, Any] = {
            "type": order.side,
            "execution": order.execution,
            "tradeType": "Spot",
            "srcCurrency": display_name(order.src),
            "dstCurrency": display_name(order.dst),
            "price": price,
            "amount": plain(order.amount),
            "matchedAmount": d10(order.matched),
            "param1": None,
            "clientOrderId": order.client_order_id,
        }
        if style == "list2":
            view.update({
                "id": order.id,
                "status": order.status,
                "fee": d10(order.fee),
                "created_at": iso(order.created_at),
                "averagePrice": plain(order.average_price),
                "market": market_name(order.src, order.dst),
            })
        return view
    matched: Any = num(order.matched)
    fee: Any = num(order.fee)
    if style == "add":
        matched = 0 if order.matched == 0 else plain(order.matched)
        fee = 0 if order.fee == 0 else plain(order.fee)
    extra: dict[str, Any] = {"isMyOrder": False} if style == "status" else {}  # as in the sample
    return {
        **extra,
        "id": order.id,
        "type": order.side,
        "execution": order.execution,
        "tradeType": "Spot",
        "market": market_name(order.src, order.dst),
        "srcCurrency": display_name(order.src),
        "dstCurrency": display_name(order.dst),
        "price": price,
        "amount": num(order.amount),
        "totalPrice": num(order.total),
        "totalOrderPrice": plain(total_order),
        "matchedAmount": matched,
        "unmatchedAmount": num(order.unmatched),
        "status": order.status,
        "partial": bool(0 < order.matched < order.amount),
        "fee": fee,
        "user": email,
        "created_at": iso(order.created_at),
        "averagePrice": plain(order.average_price),
        "clientOrderId": order.client_order_id,
    }


def trade_view(trade: Trade) -> dict[str, Any]:
    return {
        "id": trade.id,
        "orderId": trade.order_id,
        "srcCurrency": display_name(trade.src),
        "dstCurrency": display_name(trade.dst),
        "market": market_name(trade.src, trade.dst),
        "timestamp": iso(trade.timestamp),
        "type": trade.side,
        "price": plain(trade.price),
        "amount": plain(trade.amount),
        "total": plain(trade.total),
        "fee": plain(trade.fee),
    }
