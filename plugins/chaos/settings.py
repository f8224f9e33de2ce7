"""What a chaos run writes and expects (internal): the kernels' and the simulator's config files,
the log events a fault is allowed to cause, and the client order id the kernel derives."""

from __future__ import annotations

import hashlib
from pathlib import Path

SECRET = "chaos-webhook-secret"
EXCHANGE = "sim"
FINAL = {"Done", "Canceled"}
TERMINAL = {"REJECTED", "VERIFIED", "FAILED"}

# Error-level log events that are the expected, handled consequence of injected faults.
EXPECTED_ERRORS = {
    "alert_raised", "order_outcome_unknown", "order_lookup_failed", "order_verify_poll_failed",
    "leadership_lost", "redis_unreachable", "lease_renew_failed", "exchange_request_failed",
    "breaker_opened", "order_rejected", "order_unresolved", "health_check_failed", "reconcile_failed",
    "orders_alert",
}

# ... and those of a data dir made read-only (duckdb_readonly): every DuckDB write fails
READONLY_ERRORS = {
    "alert_history_write_failed", "health_history_write_failed", "signal_inbox_write_failed",
    "orders_reconcile_failed", "replication_failed",
}

LEASE_TTL = 3.0
"""Seconds: the ``[ha] lease_ttl`` the kernels are configured with (the kernel's default)."""


def client_order_id(exchange: str, signal_id: str) -> str:
    """The client order id the kernel derives for a signal (``hrkernel.orders.pipeline``'s
    ``client_order_id_for``; tests/chaos checks the two agree). Recomputed here so that the harness
    checks the kernel from outside, through its documented behaviour, without importing it."""
    return "hr" + hashlib.sha256(f"{exchange}\x1f{signal_id}".encode()).hexdigest()[:30]


def kernel_config(name: str, data: Path, web: int, sim: int, redis_url: str | None, prefix: str,
                   bus: str, alerts_url: str = "", feed: str = "") -> str:
    ha = (f'[ha]\nbackend = "redis"\nredis_url = "{redis_url}"\nkey_prefix = "{prefix}"\n'
          f'lease_ttl = "{LEASE_TTL:g}s"\n'
          if redis_url else '[ha]\nbackend = "local"\n')
    if bus == "redis" and redis_url:
        ha += f'[bus]\nbackend = "redis"\n[bus.redis]\nurl = "{redis_url}"\nprefix = "{prefix}:bus:"\n'

    return f"""# written by hrkernel chaos
[kernel]
instance_id = "{name}"
data_dir = "{data}"
[logging]
format = "json"
level = "info"
{ha}[dashboard]
port = {web}
required = true
[webhook]
enabled = true
secret = "${{HR_CHAOS_SECRET}}"
exchange = "{EXCHANGE}"
[exchanges.{EXCHANGE}]
type = "nobitex"
token = "${{HR_CHAOS_SIM_TOKEN}}"
base_url = "http://127.0.0.1:{sim}"
bot_name = "{name}"
retry_base_delay = "50ms"
breaker_reset_timeout = "3s"
[orders]
verify_deadline = "20s"
reconcile_interval = "10s"
halt_on_drift = false
max_open_orders = 100
[health]
default_interval = "1s"
""" + (f"""[alerts]
group_wait = "0s"
group_interval = "1s"
[alerts.channels.chaos]
type = "webhook"
url = "{alerts_url}"
max_per_minute = 0
""" if alerts_url else "") + (f"""# market data through its own adapter and sim account: a silent feed must not open the trading
# adapter's breaker; stale_for = 0: a failing exchange's old book is not served as fresh
[exchanges.simfeed]
type = "nobitex"
token = "${{HR_CHAOS_FEED_TOKEN}}"
base_url = "http://127.0.0.1:{sim}"
bot_name = "{name}-feed"
timeout = "2s"
retry_attempts = 1
breaker_reset_timeout = "2s"
stale_for = "0s"
[datasources.feed]
type = "sim"
exchange = "simfeed"
symbols = ["{feed}"]
interval = "500ms"
ticker = false
max_age = "3s"
backoff_max = "1s"
""" if feed else "")


SIM_CONFIG = """# written by hrkernel chaos
# Nobitex's rate limits are on (the simulator's default), as the kernels meet them in production.
admin_token = "sim-admin"
[faults]
seed = {seed}
hang_for = "3s"
back_off = 1
[accounts.default]
token = "sim-token-default"
balances = {{ rls = "100000000000", usdt = "10000", btc = "1", eth = "10" }}
[accounts.feed]
token = "sim-token-feed"
"""

