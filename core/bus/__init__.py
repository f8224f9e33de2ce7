"""hrkernel.bus (see ARCHITECTURE.md)."""
