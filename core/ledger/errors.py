"""Ledger errors."""

from __future__ import annotations

from hrkernel.errors import HrkernelError

__all__ = ["LedgerError", "UnbalancedTransactionError"]


class LedgerError(HrkernelError):
    """Base of ledger errors."""


class UnbalancedTransactionError(LedgerError, ValueError):
    """A transaction was refused before anything was written: its postings do not sum to zero per
    currency, or an amount is not a finite Decimal that fits DECIMAL(38,18)."""
