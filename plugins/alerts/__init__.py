"""hrkernel_alerts: built-in plugin package (see ARCHITECTURE.md)."""
