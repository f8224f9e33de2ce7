"""hrkernel_nobitex: built-in plugin package (see ARCHITECTURE.md)."""
