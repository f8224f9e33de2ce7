"""Entry point of the built-in datasources plugin. Imports only the kernel's public API.

Types: ``replay`` (JSON-lines/CSV file), ``nobitex`` and ``sim`` (poll an exchange's public
market data through :mod:`hrkernel.exchange`), ``nobitex_ws`` (Nobitex's websocket feed),
``failover`` (a group of the others).
"""

from __future__ import annotations

from typing import Any

from hrkernel import hookimpl
from hrkernel.spec import Register
from hrkernel_datasources.config import FailoverConfig, PollConfig, ReplayConfig, WebsocketConfig


def build_replay(config: ReplayConfig, context: Any) -> Any:
    from hrkernel_datasources.replay import ReplaySource

    return ReplaySource(config.source_name or "replay", config, context=context)


def build_poll(config: PollConfig, context: Any) -> Any:
    from hrkernel_datasources.poll import ExchangePollSource

    return ExchangePollSource(f"poll:{config.exchange}", config, context=context)


def build_websocket(config: WebsocketConfig, context: Any) -> Any:
    from hrkernel_datasources.websocket import WebsocketSource

    return WebsocketSource("websocket:nobitex", config, context=context)


def build_failover(config: FailoverConfig, context: Any) -> Any:
    from hrkernel_datasources.group import FailoverSource

    return FailoverSource("failover:" + "+".join(config.members), config, context=context)


@hookimpl
def hr_register_datasources(register: Register) -> None:
    register("replay", build_replay, config=ReplayConfig)
    register("nobitex", build_poll, config=PollConfig)
    register("sim", build_poll, config=PollConfig)
    register("nobitex_ws", build_websocket, config=WebsocketConfig)
    register("failover", build_failover, config=FailoverConfig)
