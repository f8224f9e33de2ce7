"""The lifecycle of kernel parts: re-exported from :mod:`hrkernel.lifecycle`, where areas import it
(areas never import :mod:`hrkernel.kernel`)."""

from hrkernel.lifecycle import Component, Lifecycle, PluginComponent, ShutdownStage

__all__ = ["Component", "Lifecycle", "PluginComponent", "ShutdownStage"]
