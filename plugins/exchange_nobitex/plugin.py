"""Entry point of the built-in nobitex plugin. Imports only the kernel's public API."""

from __future__ import annotations

from typing import Any

from hrkernel import hookimpl
from hrkernel.spec import Register
from hrkernel_nobitex.config import NobitexConfig


def build(config: NobitexConfig, context: Any) -> Any:
    """``factory(config, context)``: a NobitexExchange, not yet started (no I/O here)."""
    from hrkernel_nobitex.exchange import NobitexExchange

    instance = getattr(context, "instance_id", "") if context is not None else ""
    log = getattr(context, "log", None) if context is not None else None
    # Named after its config id ([exchanges.paper] logs exchange=paper, breaker exchange:paper).
    name = getattr(context, "component_id", "") if context is not None else ""
    return NobitexExchange(config, instance_id=instance, log=log, name=name or "nobitex")


@hookimpl
def hr_register_exchanges(register: Register) -> None:
    register("nobitex", build, config=NobitexConfig)
