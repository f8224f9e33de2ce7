"""Plugin discovery and registries (internal)."""

from hrkernel.plugins.manager import PluginHost, PluginRecord, Registration

__all__ = ["PluginHost", "PluginRecord", "Registration"]
