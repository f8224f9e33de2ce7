"""``[webhook]``: the TradingView webhook intake."""

from __future__ import annotations

import ipaddress

import msgspec

from hrkernel.types import ConfigStruct, Duration

TRADINGVIEW_IPS = ["52.89.214.238", "34.212.75.30", "54.218.53.128", "52.32.178.7"]
"""The addresses TradingView sends webhooks from (its support article, see README)."""


class WebhookSection(ConfigStruct, kw_only=True):
    enabled: bool = False
    secret: str = ""
    """The shared secret every alert carries (``"secret"``, ``"passphrase"``, ``"key"`` or
    ``"token"`` in the body); write it as ``${VAR}``. Required when enabled."""
    path: str = "/webhooks/tradingview"
    url_secret: bool = False
    """Also accept the secret as the last path segment (``<path>/<secret>``, TradersPost style).
    Off by default: URLs end up in proxy access logs."""
    exchange: str = "nobitex"
    """Where the signals' orders go (the ``[exchanges.<id>]`` id)."""
    markets: list[str] = msgspec.field(default_factory=list)
    """Known symbols (e.g. ``["BTCIRT", "USDTIRT"]``); a ticker outside the list gets 400.
    Empty: any well-formed symbol is accepted."""
    symbol_map: dict[str, str] = msgspec.field(default_factory=dict)
    """TradingView ticker -> exchange symbol, e.g. ``{"BTCUSDT" = "BTCIRT"}`` (applied after the
    ``EXCHANGE:`` prefix is stripped)."""
    max_body: int = 16_384
    """Bytes; larger bodies get 413."""
    body_timeout: Duration = Duration(5.0)
    """The whole body must arrive within this long, else 408 (TradingView sends a few hundred
    bytes at once; a trickle is a stalled or hostile client). ``[dashboard] body_timeout`` bounds
    every request of the listener too."""
    max_lag: Duration = Duration(300.0)
    """A payload time (``{{timenow}}``) older than this (or this far in the future) gets 400."""
    require_time: bool = False
    """Reject payloads without a time (400) instead of accepting them."""
    dedupe_bucket: Duration = Duration(60.0)
    """Payloads without a signal id: identical content within one bucket of this size is one signal."""
    dedupe_retention: Duration = Duration(7 * 86400.0)
    """How long processed signal ids are remembered (the inbox is compacted at start)."""
    allowlist: bool = False
    """Refuse (403) requests whose client address is not in ``allowed_ips``. Off by default so a
    loopback or LAN setup works out of the box; turn it on in production together with
    ``trusted_proxies`` when a TLS proxy sits in front."""
    allowed_ips: list[str] = msgspec.field(default_factory=lambda: list(TRADINGVIEW_IPS))
    trusted_proxies: list[str] = msgspec.field(default_factory=list)
    """Addresses/CIDRs of reverse proxies whose ``X-Forwarded-For`` is believed."""
    topic: str = "signals"
    """Bus topic the accepted signals are published on."""
    inbox_file: str = "signals-inbox.jsonl"
    """Relative to ``[kernel] data_dir``."""

    def __post_init__(self) -> None:
        if self.enabled and not self.secret:
            raise ValueError("webhook.secret is required when the webhook is enabled (write it as ${VAR})")
        if not self.path.startswith("/"):
            raise ValueError(f"webhook.path must start with '/', found {self.path!r}")
        if not 0 < float(self.body_timeout) <= 3600:
            raise ValueError(f"webhook.body_timeout must be more than 0 and at most 1h, found {float(self.body_timeout):g} s")
        if self.max_body < 64:
            raise ValueError(f"webhook.max_body must be at least 64 bytes, found {self.max_body}")
        for name in (*self.allowed_ips, *self.trusted_proxies):
            try:
                ipaddress.ip_network(name, strict=False)
            except ValueError:
                raise ValueError(f"not an IP address or CIDR: {name!r}") from None
