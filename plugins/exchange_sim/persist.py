"""The simulator's account state on disk, so a paper account survives restarts.

The embedded simulator (exchange type ``sim``) is the counterparty of the kernel's journal and
ledger, which live under ``data_dir`` and outlive the process. If the simulator forgot its
balances, orders and trades on every start, the first reconciliation after a restart would see
drift against the ledger and halt trading. So the simulator writes what an exchange would keep
(balances, blocked amounts, every order and trade, id counters, market prices) to one JSON file
beside the ledger after each request that changed it, and reads it back on start.

The file is replaced atomically (write a temporary file, then ``os.replace``): a crash leaves the
previous or the new snapshot, never a torn one. Decimals are written as strings.
"""

from __future__ import annotations

import json
import os
from dataclasses import fields
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec

from hrkernel_sim.engine import Engine, Order, Trade

FORMAT = 1

_ORDER_DECIMALS = {f.name for f in fields(Order) if f.type in ("Decimal", "Decimal | None")}
_TRADE_DECIMALS = {f.name for f in fields(Trade) if f.type == "Decimal"}


class SnapshotError(Exception):
    """The state file exists but cannot be read back; names the file and what is wrong."""


_ENCODER = msgspec.json.Encoder(decimal_format="string")


def dump(engine: Engine) -> dict[str, Any]:
    """Everything an exchange would remember about its accounts (msgspec encodes the order and
    trade dataclasses directly: no per-save copy, which kept a 1000-order save at ~150 ms)."""
    return {
        "format": FORMAT,
        "balances": engine.balances,
        "blocked": engine.blocked,
        "orders": list(engine.orders.values()),
        "trades": engine.trades,
        "next_order": engine._next_order,
        "next_trade": engine._next_trade,
        "mids": {s: m.mid for s, m in engine.markets.items()},
    }


def restore(engine: Engine, data: dict[str, Any]) -> None:
    """Put a :func:`dump` back into a freshly built engine (accounts not in the file keep their
    configured start; markets no longer configured are skipped)."""
    if data.get("format") != FORMAT:
        raise ValueError(f"format {data.get('format')!r}, expected {FORMAT}")
    for account, wallets in data["balances"].items():
        engine.balances[account] = {c: Decimal(v) for c, v in wallets.items()}
    for account, wallets in data["blocked"].items():
        engine.blocked[account] = {c: Decimal(v) for c, v in wallets.items()}
    # The file's values are typed as loosely as the JSON they were decoded from (Any); the
    # amounts, saved as strings, go back to Decimal.
    for raw in data["orders"]:
        saved: dict[str, Any] = {
            k: (Decimal(v) if k in _ORDER_DECIMALS and v is not None else v) for k, v in raw.items()}
        order = Order(**saved)
        engine.orders[order.id] = order
        if order.is_open:
            engine.active[order.id] = order
    trades = []
    for raw in data["trades"]:
        saved = {k: (Decimal(v) if k in _TRADE_DECIMALS else v) for k, v in raw.items()}
        trades.append(Trade(**saved))
    engine.trades = trades
    engine._next_order = int(data["next_order"])
    engine._next_trade = int(data["next_trade"])
    for symbol, mid in data.get("mids", {}).items():
        market = engine.markets.get(symbol)
        if market is not None:
            market.mid = market.last_price = market.day_open = Decimal(mid)
            market.day_high = market.day_low = market.mid


class SnapshotFile:
    """One simulator's state file: :meth:`load_into` at start, :meth:`save` after changes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.saved_version: tuple[int, int] | None = None

    def load_into(self, engine: Engine) -> bool:
        """Restore ``engine`` from the file; False when there is no file yet (a new account)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise SnapshotError(f"{self.path}: cannot read the simulator's state: {exc.strerror}") from None
        try:
            restore(engine, json.loads(text))
        except (ValueError, KeyError, TypeError) as exc:
            raise SnapshotError(
                f"{self.path}: not a simulator state file this version can read ({exc}); "
                "move it away to start the paper account afresh") from None
        self.saved_version = (id(engine), engine.version)
        return True

    def save(self, engine: Engine, *, force: bool = False) -> bool:
        """Write the engine's state if it changed since the last save (or ``force``)."""
        version = (id(engine), engine.version)
        if not force and version == self.saved_version:
            return False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_bytes(_ENCODER.encode(dump(engine)))
        os.replace(tmp, self.path)
        self.saved_version = version
        return True
