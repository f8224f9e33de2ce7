"""hrkernel.orders (see ARCHITECTURE.md)."""
