"""Turn a TradingView alert body into a :class:`~hrkernel.bus.events.SignalEvent`.

Accepted shapes (see README "Market data, signals and the message bus"):

- the recommended hrkernel JSON (``ticker``, ``action``, ``amount``/``percent``, ``order_type``,
  ``price``, ``strategy``, ``signal_id``, ``time``, ``secret``);
- 3Commas signal-bot JSON (``tv_instrument``, ``tv_exchange``, ``trigger_price``, ``timestamp``,
  ``order.amount``, ``bot_uuid``, ``max_lag``);
- TradersPost JSON (``ticker``, ``action``, ``quantity``, ``price``/``signalPrice``);
- alerts-processor / MQTT-bridge style (``symbol``, ``direction`` long/short/close, ``size`` with
  an optional ``%``; a ``data`` object whose ``strategy-order-action`` style keys are merged);
- Alertatron text: ``SECRET(BTCIRT) { market(side=buy, amount=0.01); }`` — the key-set name is
  the secret.

Every failure raises :class:`PayloadError` naming the field.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from hrkernel.bus.events import SignalAction, SignalEvent
from hrkernel.types import parse_decimal_text


class PayloadError(ValueError):
    def __init__(self, field: str, message: str, reason: str = "schema") -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.reason = reason


SECRET_KEYS = ("secret", "passphrase", "key", "token", "password")
_ALIASES: dict[str, tuple[str, ...]] = {
    "ticker": ("ticker", "tv_instrument", "symbol", "instrument", "pair"),
    "action": ("action", "side", "direction", "strategy_order_action", "order_action"),
    "amount": ("amount", "quantity", "qty", "contracts", "size", "strategy_order_contracts"),
    "percent": ("percent", "percent_of_balance", "balance_percent"),
    "order_type": ("order_type", "type", "orderType", "ordertype"),
    "price": ("price", "limit_price", "signalPrice", "trigger_price", "strategy_order_price"),
    "strategy": ("strategy", "strategy_id", "bot_uuid", "bot", "stub"),
    "signal_id": ("signal_id", "id", "alert_id", "order_id", "strategy_order_id"),
    "time": ("time", "timenow", "timestamp", "fired_at"),
}
_ACTIONS = {
    "buy": SignalAction.BUY, "long": SignalAction.BUY, "enter_long": SignalAction.BUY,
    "sell": SignalAction.SELL, "short": SignalAction.SELL, "enter_short": SignalAction.SELL,
    "close": SignalAction.CLOSE, "exit": SignalAction.CLOSE, "flat": SignalAction.CLOSE,
    "exit_long": SignalAction.CLOSE, "exit_short": SignalAction.CLOSE,
}
# Matched with fullmatch (``$`` would let "abc\n" through) and ASCII only: str.upper() folds
# non-ASCII letters into ASCII ones (dotless "ı" -> "I", "ſ" -> "S"), so "BTCıRT" would become BTCIRT.
_SYMBOL = re.compile(r"[A-Z0-9]{2,24}")
_ID = re.compile(r"[\x21-\x7e]{1,128}")
_EPOCH = re.compile(r"[0-9]{9,13}(?:\.[0-9]+)?")
_ALERTATRON = re.compile(
    r"^\s*(?P<secret>[^\s(]+)\s*\(\s*(?P<ticker>[^)\s]+)\s*\)\s*\{\s*(?P<cmd>market|limit)\s*\((?P<args>[^)]*)\)\s*;?\s*\}",
    re.S,
)


def parse_alertatron(text: str) -> dict[str, Any] | None:
    """The Alertatron command ``SECRET(TICKER) { market(side=buy, amount=1); }`` as a dict."""
    m = _ALERTATRON.match(text)
    if m is None:
        return None
    out: dict[str, Any] = {"secret": m["secret"], "ticker": m["ticker"], "order_type": m["cmd"]}
    for part in m["args"].split(","):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        if not sep:
            raise PayloadError(f"{m['cmd']}()", f"expected name=value, found {part.strip()!r}")
        out[name.strip()] = value.strip()
    return out


def flatten(body: dict[str, Any]) -> dict[str, Any]:
    """Merge the shapes' nested objects into one flat dict (outer keys win)."""
    flat: dict[str, Any] = {}
    data = body.get("data")
    if isinstance(data, dict):
        flat.update({k.replace("-", "_"): v for k, v in data.items()})
    order = body.get("order")
    if isinstance(order, dict):
        flat.update({k: v for k, v in order.items() if k in ("amount", "price", "type")})
        if isinstance(order.get("type"), str):
            flat["order_type"] = order["type"]
    for k, v in body.items():
        if k in ("data", "order") and isinstance(v, dict):
            continue
        flat[k.replace("-", "_") if "-" in k else k] = v
    return flat


def pick(flat: dict[str, Any], name: str) -> tuple[str, Any]:
    for key in _ALIASES[name]:
        if key in flat and flat[key] is not None and flat[key] != "":
            return key, flat[key]
    return name, None


def secret_of(flat: dict[str, Any]) -> str | None:
    for key in SECRET_KEYS:
        value = flat.get(key)
        if isinstance(value, str):
            return value
    return None


def _word(value: Any) -> str | None:
    """An ASCII keyword, lower-cased; None when ``value`` is not an ASCII string (so that
    ``"marKet"`` with a Kelvin sign, which str.lower() folds to "market", is not one)."""
    if not isinstance(value, str) or not value.isascii():
        return None
    return value.strip().lower()


def _decimal(field: str, value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise PayloadError(field, f"expected a number or a decimal string, found {type(value).__name__}")
    try:
        # A JSON float goes through its shortest repr, which is what the alert text said. ASCII
        # digits only: Decimal() alone turns "١٢٣" or "１２３" into 123.
        parsed = parse_decimal_text(str(value).strip())
    except (ValueError, InvalidOperation):
        raise PayloadError(field, f"expected a decimal number in ASCII digits, found {str(value)[:40]!r}") from None
    if not parsed.is_finite():
        raise PayloadError(field, "expected a finite number")
    if parsed and not -30 <= parsed.adjusted() <= 30:
        # "1e999999" is a valid Decimal that would make every later computation pathological.
        raise PayloadError(field, f"number out of range: {str(value)[:40]!r}")
    return parsed


def parse_time(field: str, value: Any) -> datetime:
    if isinstance(value, bool):
        raise PayloadError(field, "expected a time, found a boolean")
    if isinstance(value, int | float):
        seconds = float(value) / 1000.0 if value > 1e11 else float(value)  # epoch ms or s
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            raise PayloadError(field, f"epoch time out of range: {value!r}") from None
    if not isinstance(value, str):
        raise PayloadError(field, f"expected an ISO-8601 time such as 2026-01-01T12:00:00Z, found {type(value).__name__}")
    text = value.strip()
    if not text.isascii():
        raise PayloadError(field, f"expected an ISO-8601 time in ASCII digits, found {text[:40]!r}")
    if _EPOCH.fullmatch(text):
        return parse_time(field, float(text))
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise PayloadError(field, f"expected an ISO-8601 time such as 2026-01-01T12:00:00Z, found {text[:40]!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def normalize_symbol(field: str, value: Any, symbol_map: dict[str, str], markets: list[str]) -> tuple[str, str | None]:
    """``NOBITEX:BTCIRT`` -> (``BTCIRT``, ``NOBITEX``); applies the map; checks known markets."""
    if not isinstance(value, str):
        raise PayloadError(field, f"expected a ticker string such as BTCIRT, found {type(value).__name__}")
    if not value.isascii():
        raise PayloadError(field, f"not a ticker: {value[:40]!r} (ASCII letters and digits only, such as BTCIRT)")
    text = value.strip().upper()
    venue: str | None = None
    if ":" in text:
        venue, _, text = text.rpartition(":")
    for suffix in (".P",):
        text = text.removesuffix(suffix)
    text = text.replace("/", "").replace("-", "").replace("_", "")
    text = symbol_map.get(text, text)
    if not _SYMBOL.fullmatch(text):
        raise PayloadError(field, f"not a ticker: {value[:40]!r} (expected letters/digits such as BTCIRT)")
    if markets and text not in markets:
        raise PayloadError(field, f"unknown ticker {text!r}; known: {', '.join(markets)}", reason="unknown_ticker")
    return text, venue or None


def build_signal(
    flat: dict[str, Any],
    *,
    exchange: str,
    received_at: datetime,
    symbol_map: dict[str, str],
    markets: list[str],
    dedupe_bucket: float,
) -> SignalEvent:
    tkey, ticker = pick(flat, "ticker")
    if ticker is None:
        raise PayloadError("ticker", "missing (expected e.g. \"ticker\": \"{{ticker}}\")")
    symbol, _venue = normalize_symbol(tkey, ticker, symbol_map, markets)

    akey, raw_action = pick(flat, "action")
    if raw_action is None:
        raise PayloadError("action", "missing (expected buy, sell or close)")
    action_word = _word(raw_action)
    if action_word is None or action_word not in _ACTIONS:
        raise PayloadError(akey, f"expected buy, sell or close, found {str(raw_action)[:40]!r}")
    action = _ACTIONS[action_word]

    amount: Decimal | None = None
    percent: Decimal | None = None
    pkey, raw_percent = pick(flat, "percent")
    qkey, raw_amount = pick(flat, "amount")
    if isinstance(raw_amount, str) and raw_amount.strip().endswith("%"):
        raw_percent, pkey, raw_amount = raw_amount.strip()[:-1], qkey, None
    if raw_percent is not None:
        if isinstance(raw_percent, str):
            raw_percent = raw_percent.strip().removesuffix("%")
        percent = _decimal(pkey, raw_percent)
        if not Decimal(0) < percent <= Decimal(100):
            raise PayloadError(pkey, f"expected a percentage in (0, 100], found {percent}")
    if raw_amount is not None:
        if percent is not None:
            raise PayloadError(qkey, f"give either an amount or a percentage ({pkey}), not both")
        amount = _decimal(qkey, raw_amount)
        if amount <= 0:
            raise PayloadError(qkey, f"expected an amount > 0, found {amount}")

    okey, raw_type = pick(flat, "order_type")
    order_type = "market"
    if raw_type is not None:
        type_word = _word(raw_type)
        if type_word is None or type_word not in ("market", "limit"):
            raise PayloadError(okey, f"expected market or limit, found {str(raw_type)[:40]!r}")
        order_type = type_word
    prkey, raw_price = pick(flat, "price")
    price = _decimal(prkey, raw_price) if raw_price is not None else None
    if price is not None and price <= 0:
        raise PayloadError(prkey, f"expected a price > 0, found {price}")
    if order_type == "limit" and price is None:
        raise PayloadError("price", "a limit order needs a price")

    skey, raw_strategy = pick(flat, "strategy")
    strategy = None
    if raw_strategy is not None:
        if not isinstance(raw_strategy, str | int) or isinstance(raw_strategy, bool) or not _ID.fullmatch(str(raw_strategy)):
            raise PayloadError(skey, "expected a short printable id (1-128 characters, no spaces)")
        strategy = str(raw_strategy)

    tkey2, raw_time = pick(flat, "time")
    fired = parse_time(tkey2, raw_time) if raw_time is not None else None

    ikey, raw_id = pick(flat, "signal_id")
    if raw_id is not None:
        if not isinstance(raw_id, str | int) or isinstance(raw_id, bool) or not _ID.fullmatch(str(raw_id)):
            raise PayloadError(ikey, "expected a printable id (1-128 characters, no spaces)")
        signal_id = f"{strategy or '-'}:{raw_id}"
    else:
        moment = fired or received_at
        bucket = int(moment.timestamp() // max(dedupe_bucket, 1.0))
        content = "\x1f".join(
            str(x) for x in (exchange, symbol, action.value, amount, percent, order_type, price, strategy, bucket)
        )
        signal_id = "tv-" + hashlib.sha256(content.encode()).hexdigest()[:32]

    return SignalEvent(
        time=fired or received_at,
        signal_id=signal_id,
        source="tradingview",
        exchange=exchange,
        symbol=symbol,
        action=action,
        amount=amount,
        percent=percent,
        order_type=order_type,
        price=price,
        strategy=strategy,
        received_at=received_at,
    )
