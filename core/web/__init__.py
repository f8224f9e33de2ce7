"""hrkernel.web (see ARCHITECTURE.md)."""
