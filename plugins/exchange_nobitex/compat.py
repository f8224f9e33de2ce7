"""``EnhancedNobitexAdapter(config={"api_key": ..., "api_secret": ..., "connection_pool": pool})``.

The design documents configure Nobitex with an API key and secret, as exchanges that sign
requests with HMAC do. Nobitex does not sign: every private call carries
``Authorization: Token <token>`` (docs-api, authentication), where the token is what Nobitex's
panel issues as the "API key". So:

- ``api_key`` is the token (``token`` is accepted as well);
- ``api_secret`` has no role on Nobitex: it is accepted so the documents' config loads, never
  sent, logged or kept; a secret without a key is refused (it cannot authenticate anything);
- ``connection_pool`` (a ``hrkernel.resilience.ConnectionPool``): the adapter keeps its own pool
  of keep-alive httpx clients (each request's guards, breaker and rate limits depend on owning
  it), sized from the given pool's ``max_connections``, ``idle_timeout`` and
  ``connection_timeout``;
- every other key is a field of :class:`~hrkernel_nobitex.config.NobitexConfig` (durations as
  seconds), plus ``testnet=True`` for Nobitex's testnet URL.

``await adapter.initialize()`` opens the connections; ``await adapter.close()`` closes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from hrkernel.resilience import BreakerState
from hrkernel.types import Duration
from hrkernel_nobitex.config import TESTNET_URL, NobitexConfig
from hrkernel_nobitex.exchange import NobitexExchange

__all__ = ["EnhancedNobitexAdapter", "nobitex_config"]

_DURATIONS = {f.name for f in msgspec.structs.fields(NobitexConfig) if f.type is Duration}
_EXTRA = ("api_key", "api_secret", "connection_pool", "testnet")


def nobitex_config(config: Mapping[str, Any]) -> NobitexConfig:
    """The :class:`NobitexConfig` the documents' dict describes (errors never quote secrets)."""
    if not isinstance(config, Mapping):
        raise ValueError(f"EnhancedNobitexAdapter config: expected a dict, found {type(config).__name__}")
    unknown = sorted(set(config) - set(NobitexConfig.__struct_fields__) - set(_EXTRA))
    if unknown:
        raise ValueError(f"EnhancedNobitexAdapter config: unknown key(s) {', '.join(unknown)}")
    values = {k: v for k, v in config.items() if k not in _EXTRA}
    key = config.get("api_key")
    if key is not None:
        if not isinstance(key, str) or not key:
            raise ValueError("EnhancedNobitexAdapter config: api_key must be a non-empty string (the Nobitex token)")
        if values.get("token") not in (None, key):
            raise ValueError("EnhancedNobitexAdapter config: api_key and token differ; give the Nobitex token once")
        values["token"] = key
    elif config.get("api_secret") and not values.get("token"):
        raise ValueError("EnhancedNobitexAdapter config: api_secret without api_key: Nobitex authenticates with "
                         "a token only; put the token issued by Nobitex in api_key")
    if config.get("testnet"):
        values.setdefault("base_url", TESTNET_URL)
    pool = config.get("connection_pool")
    if pool is not None:
        sizing = getattr(pool, "config", None)
        if sizing is None:
            raise ValueError("EnhancedNobitexAdapter config: connection_pool must be a hrkernel ConnectionPool")
        values.setdefault("max_connections", sizing.max_connections)
        values.setdefault("idle_timeout", sizing.idle_timeout)
        values.setdefault("connect_timeout", sizing.connection_timeout)
    for name in _DURATIONS & set(values):
        value = values[name]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"EnhancedNobitexAdapter config: {name} must be a number of seconds, found {value!r}")
        values[name] = Duration(value)
    try:
        return NobitexConfig(**values)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"EnhancedNobitexAdapter config: {exc}") from None


class EnhancedNobitexAdapter(NobitexExchange):
    """The Nobitex adapter built from the documents' config dict (see the module docstring)."""

    def __init__(self, config: Mapping[str, Any], **options: Any) -> None:
        super().__init__(nobitex_config(config), **options)

    async def initialize(self) -> None:
        """Open the connection pool (the adapter's ``start()``)."""
        await self.start()

    async def close(self) -> None:
        await self.aclose()

    async def is_healthy(self) -> bool:
        """The probe failover groups use: the breaker is not open and a public read answers."""
        if self.breaker.state == BreakerState.OPEN:
            return False
        await self.ping()
        return True
