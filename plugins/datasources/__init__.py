"""hrkernel_datasources: built-in plugin package (see ARCHITECTURE.md)."""
