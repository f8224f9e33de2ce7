"""One process spending a Nobitex token's budget, for the shared-budget tests.

``python budget_worker.py SIM_URL TOKEN BUDGET INSTANCE CALLS [DATA_DIR]``: builds the adapter the
way the kernel's plugin does (``BUDGET`` is ``redis:<url>``, ``file`` for a lone kernel's data dir,
or ``none``), makes ``CALLS`` orders/list reads, prints one JSON line per read, then exits.
"""

from __future__ import annotations

import json
import sys
import time
from types import SimpleNamespace

import anyio

from hrkernel.types import Duration
from hrkernel_nobitex.config import EndpointLimit, NobitexConfig
from hrkernel_nobitex.exchange import NobitexExchange
from hrkernel_nobitex.plugin import shared_budget

LIMIT = {"list_orders": EndpointLimit(requests=5, per=Duration(10.0))}


async def main(url: str, token: str, budget: str, instance: str, calls: str, data_dir: str = "") -> None:
    config = NobitexConfig(token=token, base_url=url, rate_limits=LIMIT, rate_limit_max_wait=Duration(30.0),
                           shared_budget=budget != "none", retry_attempts=3)
    context = SimpleNamespace(instance_id=instance, log=None, data_dir=data_dir,
                              shared_redis_url=budget[6:] if budget.startswith("redis:") else None)
    async with NobitexExchange(config, instance_id=instance, budget=shared_budget(config, context)) as exchange:
        for i in range(int(calls)):
            try:
                await exchange.list_orders(status="all")
                outcome = "ok"
            except Exception as exc:
                outcome = type(exc).__name__
            print(json.dumps({"call": i, "outcome": outcome, "at": time.time()}), flush=True)


if __name__ == "__main__":
    anyio.run(main, *sys.argv[1:7])
