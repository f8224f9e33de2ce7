"""Nobitex's naming: currency codes, display names, symbols and market names.

Requests use lowercase codes (``btc``, ``rls``, ``usdt``); symbols say ``IRT`` where parameters
say ``rls`` (prices are in Rial, not Toman); order responses use display names (``"Bitcoin"``,
``"﷼"``) and market names like ``"BTC-RLS"``; ``/market/stats`` keys are ``"btc-rls"``.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal

DISPLAY_NAMES = {
    "rls": "\ufdfc",  # "﷼", as in the status, update-status and trades samples of the docs
    "usdt": "Tether",
    "btc": "Bitcoin",
    "eth": "Ethereum",
    "ltc": "Litecoin",
    "doge": "Dogecoin",
    "xrp": "Ripple",
    "trx": "TRON",
}

QUOTES = {"IRT": "rls", "USDT": "usdt"}


def split_symbol(symbol: str) -> tuple[str, str]:
    """``BTCIRT`` → (``btc``, ``rls``); ``ETHUSDT`` → (``eth``, ``usdt``)."""
    upper = symbol.upper()
    for suffix, code in QUOTES.items():
        if upper.endswith(suffix) and len(upper) > len(suffix):
            return upper[: -len(suffix)].lower(), code
    raise ValueError(f"market symbol {symbol!r} must end with IRT or USDT")


def symbol_of(src: str, dst: str) -> str:
    return src.upper() + ("IRT" if dst == "rls" else dst.upper())


def market_name(src: str, dst: str) -> str:
    return f"{src.upper()}-{dst.upper()}"


def display_name(code: str) -> str:
    return DISPLAY_NAMES.get(code, code.upper())


def round_amount(value: Decimal, step: Decimal) -> Decimal:
    """Excess decimals of an amount are cut (rounded down), as Nobitex does silently."""
    return (value / step).to_integral_value(rounding=ROUND_DOWN) * step


def round_price(value: Decimal, step: Decimal) -> Decimal:
    """Excess decimals of a price are rounded half-to-even ("banker's rounding")."""
    return (value / step).to_integral_value(rounding=ROUND_HALF_EVEN) * step


_TEN_PLACES = Decimal("1E-10")


def d10(value: Decimal) -> str:
    """A decimal the way Nobitex's 10-place fields print it: ``"3.0000000000"``, ``"0E-10"``."""
    return str(value.quantize(_TEN_PLACES))


def plain(value: Decimal) -> str:
    """A compact decimal string without exponent: ``"0.6"``, ``"520000000"``, ``"0"``."""
    if value == 0:
        return "0"
    text = format(value.normalize(), "f")
    return text
