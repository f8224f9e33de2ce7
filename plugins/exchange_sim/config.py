"""The simulator's configuration: msgspec structs that read from TOML (``sim.toml`` or ``[sim]``).

Every struct subclasses :class:`hrkernel.types.ConfigStruct`, so unknown keys are rejected and
``Duration``/``Amount`` fields take ``"250ms"`` and ``"0.5"`` strings.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import msgspec

from hrkernel.types import Amount, ConfigStruct, Duration

ENDPOINTS = (
    "orders_add",
    "orders_status",
    "orders_list",
    "orders_cancel",
    "orders_cancel_old",
    "trades_list",
    "wallets_list",
    "wallets_v2",
    "wallets_balance",
    "orderbook",
    "public_trades",
    "stats",
    "options",
    "udf_history",
)
"""The names the simulator gives Nobitex's endpoints (fault tables and rate limits use them)."""


class RateLimit(ConfigStruct, kw_only=True):
    limit: int
    window: Duration


def _default_rate_limits() -> dict[str, RateLimit]:
    # Nobitex's documented per-endpoint limits (docs-api _general_notes.md, _market_trade.md,
    # _market_data.md, _user_data.md at e7df921). Placement is 300 per 10 minutes, shared.
    table = {
        "orders_add": (300, 600.0),
        "orders_status": (300, 60.0),
        "orders_cancel": (90, 60.0),
        "orders_cancel_old": (30, 60.0),
        "orders_list": (30, 60.0),
        "trades_list": (30, 60.0),
        "orderbook": (300, 60.0),
        "public_trades": (60, 60.0),
        "stats": (20, 60.0),
        "wallets_list": (20, 120.0),
        "wallets_v2": (15, 60.0),
        "wallets_balance": (60, 120.0),
    }
    return {k: RateLimit(limit=n, window=Duration(w)) for k, (n, w) in table.items()}


class RateLimitConfig(ConfigStruct, kw_only=True):
    enabled: bool = True
    limits: dict[str, RateLimit] = msgspec.field(default_factory=_default_rate_limits)
    ignored_429_before_block: int = 3
    """Requests sent while still inside a ``backOff`` before the token is blocked."""
    block: Duration = Duration(120.0)
    """How long an identity that ignores 429s is blocked on every endpoint (Nobitex: 2 minutes)."""
    bad_token_per_ip: int = 100
    bad_token_window: Duration = Duration(1800.0)


class LatencyConfig(ConfigStruct, kw_only=True):
    fixed: Duration = Duration(0.0)
    jitter: Duration = Duration(0.0)
    """Uniform extra delay in ``[0, jitter]``."""
    spike_rate: float = 0.0
    spike: Duration = Duration(0.0)


class EndpointFaults(ConfigStruct, kw_only=True):
    """Probabilities (0..1) of each fault on one endpoint (or ``"*"`` for every endpoint)."""

    error_500: float = 0.0
    error_502: float = 0.0
    error_503: float = 0.0
    error_429: float = 0.0
    hang: float = 0.0
    drop_after_accept: float = 0.0
    """The request is executed (an order placed), then the connection is aborted unanswered."""
    ok_without_data: float = 0.0
    """The request is executed, then answered 200 ``{"status":"ok"}`` without its data key."""
    malformed_200: float = 0.0
    """The request is executed, then answered 200 with a body that is not the documented shape
    (an HTML page, the JSON cut in half, the data keys set to null, or nothing; seeded)."""
    latency: LatencyConfig | None = None


class ScriptedFault(ConfigStruct, kw_only=True):
    """A fault forced on the next ``count`` matching requests (deterministic tests)."""

    endpoint: str
    kind: str
    """One of ``error_500``, ``error_502``, ``error_503``, ``error_429``, ``hang``,
    ``drop_after_accept``, ``ok_without_data``, ``malformed_200``."""
    count: int = 1


class DowntimeWindow(ConfigStruct, kw_only=True):
    """Seconds after the simulator (re)started during which it answers 503 everywhere."""

    start: Duration
    end: Duration
    endpoints: list[str] = msgspec.field(default_factory=list)
    """Empty means every endpoint."""


class FaultConfig(ConfigStruct, kw_only=True):
    seed: int = 0
    latency: LatencyConfig = msgspec.field(default_factory=LatencyConfig)
    endpoints: dict[str, EndpointFaults] = msgspec.field(default_factory=dict)
    scripted: list[ScriptedFault] = msgspec.field(default_factory=list)
    downtime: list[DowntimeWindow] = msgspec.field(default_factory=list)
    hang_for: Duration = Duration(300.0)
    """How long a hung request is held (the server's stop releases it earlier)."""
    back_off: int = 5
    """``backOff`` seconds (and ``Retry-After``) on an injected 429."""


class MarketConfig(ConfigStruct, kw_only=True):
    symbol: str
    """Nobitex's symbol, e.g. ``BTCIRT`` (IRT means rls: prices are in Rial)."""
    price: Amount
    amount_precision: Amount
    price_precision: Amount
    volatility: float = 0.001
    """Standard deviation of one random-walk step, relative to the price."""
    levels: int = 20
    level_size: Amount = Amount("0.5")
    """Synthetic liquidity per book level, in the source currency."""
    spread: float = 0.0005
    """Relative distance of the best synthetic bid/ask from the mid price."""
    step: float = 0.0005
    """Relative distance between synthetic levels."""
    price_series: list[Amount] = msgspec.field(default_factory=list)
    """Mid prices replayed one per step instead of the random walk (cycled)."""
    closed: bool = False


def _default_markets() -> list[MarketConfig]:
    return [
        MarketConfig(symbol="BTCIRT", price=Amount("115000000000"), amount_precision=Amount("0.000001"),
                     price_precision=Amount("10"), level_size=Amount("0.05")),
        MarketConfig(symbol="USDTIRT", price=Amount("1050000"), amount_precision=Amount("0.01"),
                     price_precision=Amount("10"), level_size=Amount("2000")),
        MarketConfig(symbol="ETHIRT", price=Amount("4000000000"), amount_precision=Amount("0.00001"),
                     price_precision=Amount("10"), level_size=Amount("1")),
        MarketConfig(symbol="BTCUSDT", price=Amount("110000"), amount_precision=Amount("0.000001"),
                     price_precision=Amount("0.01"), level_size=Amount("0.05")),
        MarketConfig(symbol="ETHUSDT", price=Amount("3800"), amount_precision=Amount("0.0001"),
                     price_precision=Amount("0.01"), level_size=Amount("1")),
    ]


class AccountConfig(ConfigStruct, kw_only=True):
    token: str
    """The ``Authorization: Token <token>`` value that selects this account."""
    balances: dict[str, Amount] = msgspec.field(default_factory=dict)
    """Starting balances by lowercase currency code (``rls``, ``btc``, ``usdt``)."""
    email: str = ""


def _default_accounts() -> dict[str, AccountConfig]:
    return {
        "default": AccountConfig(
            token="sim-token-default",
            balances={"rls": Amount("100000000000"), "usdt": Amount("10000"),
                      "btc": Amount("1"), "eth": Amount("10")},
        )
    }


class SimConfig(ConfigStruct, kw_only=True):
    """Everything the simulator needs; ``hrkernel sim serve --config sim.toml`` reads this."""

    host: str = "127.0.0.1"
    port: int = 0
    """0 picks a free port (read it from ``SimServer.base_url``)."""
    admin_token: str = "sim-admin"
    seed: int = 0
    """Seeds the price walk; faults have their own ``faults.seed``."""
    maker_fee: Amount = Amount("0.001")
    taker_fee: Amount = Amount("0.0013")
    min_order_rls: Amount = Amount("3000000")
    min_order_usdt: Amount = Amount("11")
    bad_price_band: Amount = Amount("0.3")
    """A limit price further than this fraction from the market price is ``BadPrice``."""
    market_band: Amount = Amount("0.01")
    """Market orders fill only within this fraction of their price (or of the best price)."""
    duplicate_window: Duration = Duration(10.0)
    """Identical orders inside this window get ``DuplicateOrder`` (not with ``pro=yes``)."""
    walk_on_request: bool = True
    """Advance every market's price by one step on each order placement and book read."""
    markets: list[MarketConfig] = msgspec.field(default_factory=_default_markets)
    accounts: dict[str, AccountConfig] = msgspec.field(default_factory=_default_accounts)
    faults: FaultConfig = msgspec.field(default_factory=FaultConfig)
    rate_limits: RateLimitConfig = msgspec.field(default_factory=RateLimitConfig)


def _dec_hook(type_: type, obj: object) -> object:
    if type_ is Duration and isinstance(obj, int | float) and not isinstance(obj, bool):
        return Duration(float(obj))  # the admin endpoint round-trips durations as seconds
    if type_ in (Duration, Amount):
        return type_.parse(obj)
    raise NotImplementedError(f"cannot decode {type_!r}")


def parse_config(data: object, type_: type[msgspec.Struct] = SimConfig) -> msgspec.Struct:
    """Validate a decoded mapping (TOML or JSON) into ``type_``; errors name the key path."""
    try:
        return msgspec.convert(data, type_, dec_hook=_dec_hook, strict=False)
    except msgspec.ValidationError as exc:
        raise ValueError(f"invalid simulator config: {exc}") from None


def load_config(path: str | Path) -> SimConfig:
    """Read a ``sim.toml`` (top level, or under a ``[sim]`` table)."""
    import tomllib

    raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    if isinstance(raw.get("sim"), dict) and len(raw) == 1:
        raw = raw["sim"]
    try:
        cfg = parse_config(raw)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    assert isinstance(cfg, SimConfig)
    return cfg


def to_builtins(cfg: msgspec.Struct) -> object:
    """A JSON-ready view of a config struct (durations as seconds, amounts as strings)."""

    def enc(obj: object) -> object:
        if isinstance(obj, Decimal):
            return str(obj)
        if isinstance(obj, float):
            return float(obj)
        raise NotImplementedError(f"cannot encode {type(obj)!r}")
    return msgspec.to_builtins(cfg, enc_hook=enc)
