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
    return NobitexExchange(config, instance_id=instance, log=log, budget=shared_budget(config, context))


def shared_budget(config: NobitexConfig, context: Any) -> Any:
    """The token's request budget shared with every process using it (see ``hrkernel_nobitex.budget``):
    the kernel's shared Redis when it has one, else a file under its data dir; None when off."""
    from hrkernel_nobitex.budget import FileBudget, RedisBudget, credential_key

    if not config.shared_budget or context is None or not config.token:
        return None
    credential = credential_key(config.token)
    url = getattr(context, "shared_redis_url", None)
    if url:
        return RedisBudget(url, credential)
    data_dir = getattr(context, "data_dir", None)
    if not data_dir:
        return None
    from pathlib import Path

    return FileBudget(Path(data_dir) / "rate-budget.sqlite", credential)


@hookimpl
def hr_register_exchanges(register: Register) -> None:
    register("nobitex", build, config=NobitexConfig)
