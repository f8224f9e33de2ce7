"""Balance changes an operator makes: deposits, withdrawals, and acknowledged drift.

Reconciliation compares the exchange with the ledger. Value the operator moves in or out of an
exchange account (a bank deposit, a withdrawal to a wallet) is a real change the ledger must
record, or the next reconciliation calls it drift. Two paths, both ledger transactions with the
operator's reason:

- :func:`book_transfer`: ``hrkernel ledger deposit|withdraw`` before or after the move. On a
  paper account (an exchange object offering ``paper_transfer``), the simulated account is
  credited or debited in the same step, so ledger and exchange move together.
- :func:`acknowledge_drift`: ``hrkernel reconcile --ack`` after a reconciliation halted on drift
  beyond tolerance. The drift the operator looked at (the last report's ``alerted`` entries) is
  booked as an adjusting transaction against ``adjustments:<exchange>`` and the drift halt is
  lifted; the next reconciliation finds ledger and exchange equal and does not halt again.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec

from hrkernel.logging import get_logger
from hrkernel.orders.reconcile import StateReconciliation

log = get_logger("hrkernel.orders")


class TransferError(ValueError):
    """A deposit or withdrawal that cannot be booked; says what and how to fix it."""


class BookedTransaction(msgspec.Struct, frozen=True, kw_only=True):
    exchange: str
    currency: str
    amount: Decimal
    """Signed: what ``<exchange>:<currency>`` changed by."""
    kind: str
    """``deposit``, ``withdrawal`` or ``adjustment``."""
    reason: str
    tx_id: int


async def book_transfer(pipeline: Any, exchange: str, currency: str, amount: Decimal, reason: str,
                        *, withdraw: bool = False) -> BookedTransaction:
    """Record value entering (or, ``withdraw``, leaving) ``exchange`` from outside."""
    if exchange not in pipeline.exchanges:
        known = ", ".join(sorted(pipeline.exchanges)) or "none"
        raise TransferError(f"no exchange {exchange!r} (configured: {known})")
    if amount <= 0:
        raise TransferError(f"amount must be positive, found {amount}")
    if not reason.strip():
        raise TransferError("a reason is required (--reason): it is what the ledger shows later")
    currency = currency.upper()
    signed = -amount if withdraw else amount
    if withdraw:
        held = pipeline.ledger.venue_balances(exchange).get(currency, Decimal(0))
        if amount > held:
            raise TransferError(f"the ledger holds {held} {currency} on {exchange}; cannot withdraw {amount}")
    target = pipeline.exchanges[exchange]
    paper = getattr(target, "paper_transfer", None)
    if paper is not None:  # a simulated account: move the money there too
        await paper(currency, signed)
    kind = "withdrawal" if withdraw else "deposit"
    tx_id = pipeline.ledger.deposit(exchange, currency, signed, reason=f"{kind}: {reason.strip()}")
    log.warning("ledger_transfer_booked", exchange=exchange, currency=currency, amount=str(signed),
                kind=kind, reason=reason.strip(), tx_id=tx_id, paper=paper is not None)
    return BookedTransaction(exchange=exchange, currency=currency, amount=signed, kind=kind,
                             reason=reason.strip(), tx_id=tx_id)


async def acknowledge_drift(recon: StateReconciliation, who: str) -> list[BookedTransaction]:
    """Book the drift of the last reconciliation of each exchange that was alerted (beyond
    tolerance), mark it acknowledged in that report, and lift the drift halt.

    Returns what was booked; empty when there was no drift to acknowledge (the halt, if any, is
    lifted all the same)."""
    async with recon.running:  # not while a reconciliation compares (see StateReconciliation.running)
        return _book_acknowledged(recon, who)


def _book_acknowledged(recon: StateReconciliation, who: str) -> list[BookedTransaction]:
    booked: list[BookedTransaction] = []
    ledger = recon.pipeline.ledger
    for name, report in sorted(recon.last.items()):
        kept = []
        for d in report.drift:
            if d.action != "alerted":
                kept.append(d)
                continue
            reason = (f"drift acknowledged by {who}: exchange {d.exchange_total} vs ledger "
                      f"{d.ledger_total} {d.currency}")
            tx_id = ledger.adjust(name, d.currency, d.drift, reason=reason)
            booked.append(BookedTransaction(exchange=name, currency=d.currency, amount=d.drift,
                                            kind="adjustment", reason=reason, tx_id=tx_id))
            kept.append(msgspec.structs.replace(d, action="acknowledged"))
        report.drift = kept
    log.warning("reconcile_drift_booked", who=who,
                adjustments=[f"{b.exchange} {b.currency} {b.amount:+}" for b in booked])
    recon.acknowledge(who)
    return booked
