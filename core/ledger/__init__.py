"""hrkernel.ledger: double-entry shadow accounting in DuckDB (internal; see ARCHITECTURE.md)."""

from hrkernel.ledger.errors import LedgerError, UnbalancedTransactionError
from hrkernel.ledger.ledger import Ledger, Posting, Transaction, fill_transaction

__all__ = ["Ledger", "LedgerError", "Posting", "Transaction", "UnbalancedTransactionError", "fill_transaction"]
