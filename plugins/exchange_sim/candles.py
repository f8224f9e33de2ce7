"""``GET /market/udf/history``: OHLC candles of one market, as Nobitex serves them.

Shapes from nobitex/docs-api ``source/includes/_market_data.md`` ("آمار OHLC بازار نوبیتکس"):

- parameters ``symbol``, ``resolution`` and ``to`` are required; ``from`` is optional;
  ``countback`` (candles before ``to``) takes priority over ``from``; ``page`` (default 1)
  pages through more than 500 candles;
- ``resolution`` is one of ``1 5 15 30 60 180 240 360 720 D 2D 3D``; any other value is
  answered ``{"s": "error", "errmsg": "Invalid resolution!"}``;
- success is ``{"s": "ok", "t": [...], "o": [...], "h": [...], "l": [...], "c": [...],
  "v": [...]}`` with ``t`` the candle's start in Unix seconds and the prices as JSON numbers;
- a range without trades is ``{"s": "no_data"}``.

The docs do not say which end ``page`` counts from; here page 1 holds the 500 candles nearest
``to`` (returned oldest first), page 2 the 500 before them. Candles are built from the market's
tape (every trade the engine saw, with the opening price as its first point); a bucket without
trades has no candle.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec

from hrkernel_sim.state import SimState

Result = tuple[int, dict[str, Any]]

RESOLUTIONS: dict[str, int] = {
    "1": 60, "5": 300, "15": 900, "30": 1800,
    "60": 3600, "180": 10800, "240": 14400, "360": 21600, "720": 43200,
    "D": 86400, "2D": 172800, "3D": 259200,
}
PAGE_SIZE = 500
"""Candles per answer at most (the docs)."""

# The docs print candle values as JSON numbers (``"o": [146272500, 150551000]``), not strings.
NUMBERS = msgspec.json.Encoder(decimal_format="number")


def _error(message: str) -> Result:
    return 200, {"s": "error", "errmsg": message}


def _int(params: dict[str, Any], key: str) -> int | None:
    value = params.get(key)
    if value is None or value == "":
        return None
    try:
        return int(str(value))
    except ValueError:
        raise ValueError(f"{key}: {value!r} is not an integer") from None


def udf_history(state: SimState, params: dict[str, Any]) -> Result:
    symbol = str(params.get("symbol") or "").upper()
    market = state.engine.markets.get(symbol)
    if not symbol:
        return _error("symbol is required")
    if market is None:
        return _error(f"Invalid symbol {symbol}!")
    seconds = RESOLUTIONS.get(str(params.get("resolution") or ""))
    if seconds is None:
        return _error("Invalid resolution!")
    try:
        to = _int(params, "to")
        start = _int(params, "from")
        countback = _int(params, "countback")
        page = _int(params, "page") or 1
    except ValueError as exc:
        return _error(str(exc))
    if to is None:
        return _error("to is required")
    if page < 1 or (countback is not None and countback < 1):
        return _error("page and countback must be positive")
    candles: dict[int, list[Decimal]] = {}  # bucket start -> [open, high, low, close, volume]
    for when, price, volume in market.tape:
        bucket = int(when) // seconds * seconds
        if bucket > to or (countback is None and start is not None and bucket < start // seconds * seconds):
            continue
        candle = candles.get(bucket)
        if candle is None:
            candles[bucket] = [price, price, price, price, volume]
        else:
            candle[1] = max(candle[1], price)
            candle[2] = min(candle[2], price)
            candle[3] = price
            candle[4] += volume
    times = sorted(candles)
    if countback is not None:
        times = times[-countback:]
    end = len(times) - (page - 1) * PAGE_SIZE
    times = times[max(0, end - PAGE_SIZE): max(0, end)]
    if not times:
        return 200, {"s": "no_data"}
    return 200, {
        "s": "ok",
        "t": times,
        "o": [candles[t][0] for t in times],
        "h": [candles[t][1] for t in times],
        "l": [candles[t][2] for t in times],
        "c": [candles[t][3] for t in times],
        "v": [candles[t][4] for t in times],
    }
