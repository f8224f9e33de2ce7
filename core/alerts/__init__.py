"""hrkernel.alerts (see ARCHITECTURE.md)."""
