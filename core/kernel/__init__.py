"""The composition root (internal)."""

from hrkernel.kernel.component import Component, PluginComponent
from hrkernel.kernel.kernel import Kernel

__all__ = ["Component", "Kernel", "PluginComponent"]
