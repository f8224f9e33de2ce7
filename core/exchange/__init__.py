"""hrkernel.exchange (see ARCHITECTURE.md)."""
