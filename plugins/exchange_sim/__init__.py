"""hrkernel_sim: built-in plugin package (see ARCHITECTURE.md)."""
