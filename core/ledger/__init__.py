"""hrkernel.ledger: double-entry shadow accounting in DuckDB (internal; see ARCHITECTURE.md)."""

from hrkernel.ledger.errors import LedgerError, UnbalancedTransactionError
from hrkernel.ledger.ledger import Ledger, Posting, Transaction, fill_transaction
from hrkernel.ledger.writer import LedgerWriter

__all__ = ["Ledger", "LedgerError", "LedgerWriter", "Posting", "Transaction", "UnbalancedTransactionError", "fill_transaction"]
