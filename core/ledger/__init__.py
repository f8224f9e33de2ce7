"""hrkernel.ledger (see ARCHITECTURE.md)."""
