"""hrkernel.resilience (see ARCHITECTURE.md)."""
