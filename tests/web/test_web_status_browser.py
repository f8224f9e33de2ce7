"""One overall state in a real Chromium: the header pill and the top banner turn red, naming what
is wrong, for an open exchange breaker, the kill switch and a critical alert; /api/status and
/readyz say the same word. Screenshots go to ``test-artifacts/`` (docs/ holds chosen ones)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from hrkernel.exchange.errors import ExchangeUnavailableError

from . import test_web_browser as _browser_tests

# The real-Chromium fixtures of the dashboard's browser tests, shared.
browser = _browser_tests.browser
open_page = _browser_tests.open_page
CHROMIUM = _browser_tests.CHROMIUM

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")

RED = "rgb(198, 40, 40)"


def header(page: Any) -> tuple[str, str]:
    return page.inner_text("#overall"), page.eval_on_selector("#overall", "e => getComputedStyle(e).backgroundColor")


def wait_state(page: Any, state: str) -> None:
    page.wait_for_function(f"() => document.getElementById('overall').className.includes('state-{state}')", timeout=10_000)


def test_an_open_exchange_breaker_turns_header_and_banner_red_and_raises_its_own_alert(
    sim_kernel: Any, open_page: Any, artifacts: Path,
) -> None:
    k = sim_kernel.kernel
    exchange = k.get("exchange:nobitex").obj
    view = open_page(k.url)
    page = view.page
    wait_state(page, "trading")
    assert page.locator("#status-banner").is_hidden()
    sim_kernel.fault("error_503", 3)
    for _ in range(3):
        with pytest.raises(ExchangeUnavailableError):
            k.call(exchange.recent_trades, "BTCIRT")
    assert exchange.breaker.state.value == "open"
    name = exchange.breaker.name  # the adapter's breaker of the failing endpoint group
    assert name.startswith("exchange:nobitex")
    wait_state(page, "degraded")
    text, color = header(page)
    assert color == RED and f"breaker {name} open" in text
    banner = page.inner_text("#status-banner")
    assert "DEGRADED" in banner and f"breaker {name} open" in banner
    status = httpx.get(k.url + "/api/status", timeout=5).json()
    assert status["overall"] == "degraded" and f"breaker {name} open" in status["why"]
    ready = httpx.get(k.url + "/readyz", timeout=5).json()
    assert ready["status"] == "degraded"
    alerts = k.call(lambda: [a.title for a in k.get("alerts").open.values() if a.context.get("breaker") == name])
    assert alerts == ["circuit breaker open"]
    page.screenshot(path=str(artifacts / "dashboard-status-breaker.png"), full_page=False)
    assert view.errors == []


def test_the_kill_switch_turns_header_and_banner_red_and_readyz_not_ready(
    sim_kernel: Any, open_page: Any, artifacts: Path,
) -> None:
    k = sim_kernel.kernel
    view = open_page(k.url)
    page = view.page
    wait_state(page, "trading")
    r = httpx.post(k.url + "/api/killswitch", json={"on": True, "reason": "operator stop"},
                   headers={"Authorization": f"Bearer {k.token}"}, timeout=5)
    assert r.status_code == 200, r.text
    wait_state(page, "halted")
    text, color = header(page)
    assert color == RED and text.startswith("halted") and "operator stop" in text
    assert "kill_switch: operator stop" in page.inner_text("#status-banner")
    ready = httpx.get(k.url + "/readyz", timeout=5)
    assert ready.status_code == 503 and ready.json()["status"] == "halted"
    metrics = httpx.get(k.url + "/metrics", timeout=5).text
    assert 'hrkernel_state{state="halted"} 1.0' in metrics and 'hrkernel_state{state="trading"} 0.0' in metrics
    page.screenshot(path=str(artifacts / "dashboard-status-killswitch.png"), full_page=False)
    httpx.post(k.url + "/api/killswitch", json={"on": False}, headers={"Authorization": f"Bearer {k.token}"}, timeout=5)
    wait_state(page, "trading")
    assert page.locator("#status-banner").is_hidden()
    assert view.errors == []


def test_a_critical_alert_turns_header_and_banner_red(running_kernel: Any, open_page: Any, artifacts: Path) -> None:
    view = open_page(running_kernel.url)
    page = view.page
    wait_state(page, "running")  # no order pipeline in this kernel: nothing to trade, nothing wrong
    alerts = running_kernel.get("alerts")
    running_kernel.call(lambda: alerts.send_alert_nowait(source="orders", level="critical",
                                                         title="ledger unbalanced", message="tx 7"))
    wait_state(page, "degraded")
    text, color = header(page)
    assert color == RED and "critical alert: ledger unbalanced" in text
    assert "critical alert: ledger unbalanced" in page.inner_text("#status-banner")
    assert httpx.get(running_kernel.url + "/api/status", timeout=5).json()["overall"] == "degraded"
    page.screenshot(path=str(artifacts / "dashboard-status-critical.png"), full_page=False)
    assert view.errors == []
