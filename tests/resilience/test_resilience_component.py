"""The [resilience] config section and the kernel component built from it."""

from __future__ import annotations

import msgspec
import pytest

from hrkernel.config.validate import dec_hook
from hrkernel.resilience import BreakerRegistry, BreakerState
from hrkernel.resilience.component import ResilienceComponent
from hrkernel.resilience.config import ResilienceSection

pytestmark = pytest.mark.anyio

TABLE = {
    "breakers": {"exchange_api": {"failure_threshold": 3, "reset_timeout": "30s",
                                  "failure_rate_threshold": 0.5, "slow_call_duration": "2s"}},
    "limiters": {"nobitex_orders": {"limits": [{"rate": 300, "period": "10m", "name": "place"},
                                               {"rate": 10, "period": "1s"}]}},
    "bulkheads": {"orders": {"max_concurrent": 4, "max_queue": 8, "queue_timeout": "2s"}},
}


def decode(table: dict) -> ResilienceSection:
    return msgspec.convert(table, ResilienceSection, dec_hook=dec_hook)


async def test_component_builds_what_the_section_names() -> None:
    component = ResilienceComponent(decode(TABLE), breakers=BreakerRegistry())
    breaker = component.breaker("exchange_api")
    assert breaker.failure_threshold == 3 and breaker.reset_timeout == 30.0
    assert breaker.slow_call_duration == 2.0 and breaker.state is BreakerState.CLOSED
    limiter = component.limiter("nobitex_orders")
    assert [lim.period for lim in limiter.limits] == [600.0, 1.0]
    assert component.bulkhead("orders").queue_timeout == 2.0
    assert component.describe()["limiters"] == ["nobitex_orders"]
    with pytest.raises(KeyError, match="configured: nobitex_orders"):
        component.limiter("nope")
    await component.stop()


def test_bad_tables_are_rejected_with_their_reason() -> None:
    with pytest.raises(msgspec.ValidationError, match="failure_rate_threshold"):
        decode({"breakers": {"x": {"failure_rate_threshold": 50}}})
    with pytest.raises(msgspec.ValidationError, match="at least one limit"):
        decode({"limiters": {"x": {"limits": []}}})
    with pytest.raises(msgspec.ValidationError, match="unknown field"):
        decode({"bulkheads": {"x": {"max_concurent": 3}}})


def test_the_commented_example_in_hr_toml_is_valid() -> None:
    import re
    import tomllib
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "hr.toml").read_text()
    block = re.search(r"^# \[resilience\.breakers.*?^# interval.*?$", text, flags=re.S | re.M)
    assert block is not None
    uncommented = "\n".join(re.sub(r"^# ?", "", line) for line in block.group(0).splitlines())
    uncommented = uncommented.replace("${REDIS_URL}", "redis://127.0.0.1:6379/0")  # the loader's job
    section = decode(tomllib.loads(uncommented)["resilience"])
    component = ResilienceComponent(section, breakers=BreakerRegistry())
    assert component.sync is not None and component.breaker("exchange_api").minimum_calls == 20


async def test_config_applies_to_breakers_decorated_before_the_kernel_built() -> None:
    from hrkernel.resilience import circuit_breaker

    reg = BreakerRegistry()

    @circuit_breaker(name="exchange_api", registry=reg)  # import time: defaults
    async def call() -> int:
        return 1

    assert call.breaker.failure_threshold == 5
    ResilienceComponent(decode(TABLE), breakers=reg)
    assert call.breaker is reg.get("exchange_api")
    assert call.breaker.failure_threshold == 3 and call.breaker.failure_rate_threshold == 0.5
    assert await call() == 1
