"""The dashboard in a real headless Chromium (Debian's ``chromium``, driven by Playwright) against
a running kernel: live updates, actions with confirmation and token, staleness, phone width.

Screenshots go to ``test-artifacts/`` (gitignored).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hrkernel.exchange.errors import ExchangeUnavailableError
from hrkernel.resilience import CircuitBreaker, registry

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=".ci/run installs Debian's chromium; it is missing here")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


class Page:
    """A page plus what it logged: console errors and uncaught exceptions fail the test."""

    def __init__(self, browser: Any, url: str, width: int = 1366, height: int = 900) -> None:
        self.context = browser.new_context(viewport={"width": width, "height": height})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("console", lambda m: self.errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("dialog", self._dialog)
        self.page.goto(url + "/")
        self.page.wait_for_selector("#panel-components tr[data-component]", timeout=10_000)
        self.page.evaluate("window.__loadedOnce = true")  # gone if the page ever reloads

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.accept()

    def not_reloaded(self) -> bool:
        return bool(self.page.evaluate("window.__loadedOnce === true"))

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def open_page(browser: Any) -> Iterator[Any]:
    pages: list[Page] = []

    def open_(url: str, **size: int) -> Page:
        page = Page(browser, url, **size)
        pages.append(page)
        return page

    yield open_
    for page in pages:
        page.close()


@pytest.fixture
def breaker() -> Iterator[CircuitBreaker]:
    b = registry.get_or_create(f"exchange-{uuid.uuid4().hex[:6]}", failure_threshold=3, reset_timeout=120.0)
    yield b
    registry.remove(b.name)


def test_page_loads_without_errors_and_shows_the_running_kernels_components(running_kernel: Any, open_page: Any, artifacts: Path) -> None:
    view = open_page(running_kernel.url)
    page = view.page
    for component in running_kernel.kernel.components:
        assert page.locator(f'#panel-components tr[data-component="{component.name}"]').count() == 1, component.name
    for check in running_kernel.get("health").runs:
        page.wait_for_selector(f'#panel-health [data-chart="{check}"] polyline', timeout=5_000)
        page.wait_for_selector(f'#panel-health [data-trend="{check}"] rect', timeout=5_000)  # from DuckDB
    assert "web-test" in page.inner_text("#instance")
    assert page.inner_text("#panel-leadership") .count("leader") >= 2
    assert "not configured" in page.inner_text("#panel-orders")  # no order pipeline in this kernel
    page.wait_for_function("() => document.getElementById('freshness').textContent.startsWith('live')", timeout=5_000)
    assert page.locator("#stale").is_hidden()
    page.screenshot(path=str(artifacts / "dashboard-load.png"), full_page=True)
    assert view.errors == []
    assert all(u.startswith(running_kernel.url) for u in view.requests), "the page fetched something off-origin"


def test_a_breaker_opened_by_real_failures_turns_red_without_a_reload(running_kernel: Any, open_page: Any, breaker: CircuitBreaker, artifacts: Path) -> None:
    view = open_page(running_kernel.url)
    page = view.page
    row = f'#panel-breakers tr[data-breaker="{breaker.name}"]'
    page.wait_for_selector(row, timeout=5_000)
    assert "closed" in page.inner_text(row)
    for _ in range(3):  # an exchange endpoint that refuses connections (nothing listens on port 9)
        with pytest.raises(httpx.ConnectError):
            breaker.call_sync(httpx.get, "http://127.0.0.1:9/api/v2/orderbook", timeout=1)
    assert breaker.state.value == "open"
    page.wait_for_selector(f"{row}.state-open", timeout=5_000)
    color = page.eval_on_selector(f"{row} td", "td => getComputedStyle(td).backgroundColor")
    assert color == "rgb(253, 236, 234)"  # the red row background
    assert "open" in page.inner_text(f"{row} .pill") and "in " in page.inner_text(row)  # next retry shown
    assert view.not_reloaded()
    page.screenshot(path=str(artifacts / "dashboard-breaker-open.png"), full_page=True)
    assert view.errors == []


def test_the_exchange_breaker_opened_by_simulator_faults_turns_red_without_a_reload(sim_kernel: Any, open_page: Any, artifacts: Path) -> None:
    k = sim_kernel.kernel
    exchange = k.get("exchange:nobitex").obj
    assert k.call(exchange.order_book, "BTCIRT").bids  # the simulator answers: breaker closed
    view = open_page(k.url)
    page = view.page
    row = f'#panel-breakers tr[data-breaker="{exchange.breaker.name}"]'
    page.wait_for_selector(row, timeout=5_000)
    assert "closed" in page.inner_text(row)
    for panel in ("pools", "bulkheads"):  # what the adapter holds shows up without registering
        assert "exchange:nobitex" in page.inner_text(f"#panel-{panel}")
    assert "exchange:nobitex:orderbook" in page.inner_text("#panel-limiters")
    sim_kernel.fault("error_503", 3)  # the exchange starts failing
    for _ in range(3):
        with pytest.raises(ExchangeUnavailableError):
            k.call(exchange.recent_trades, "BTCIRT")
    assert exchange.breaker.state.value == "open"
    page.wait_for_selector(f"{row}.state-open", timeout=5_000)
    component = '#panel-components tr[data-component="exchange:nobitex"]'
    assert "degraded" in page.inner_text(component) and f"breaker {exchange.breaker.name} open" in page.inner_text(component)
    assert view.not_reloaded()
    page.screenshot(path=str(artifacts / "dashboard-sim-breaker.png"), full_page=True)
    assert view.errors == []


def test_an_alert_is_acknowledged_by_clicking(running_kernel: Any, open_page: Any) -> None:
    alerts = running_kernel.get("alerts")
    alert = running_kernel.call(lambda: alerts.send_alert_nowait(source="exchange", level="error", title="nobitex timeouts", message="5 in 1 min"))
    view = open_page(running_kernel.url)
    page = view.page
    row = f'#panel-alerts tr[data-alert="{alert.id}"]'
    page.wait_for_selector(f"{row} button.ack", timeout=5_000)
    page.fill("#token", running_kernel.token)
    page.click(f"{row} button.ack")
    page.wait_for_selector(f"{row} .acked", timeout=5_000)
    assert "acknowledged by dashboard" in page.inner_text(row)
    assert view.dialogs and "Acknowledge alert" in view.dialogs[0]
    assert running_kernel.call(lambda: alerts.open[alert.fingerprint].ack_by) == "dashboard"
    assert view.errors == []


def test_manual_failover_is_refused_without_the_token_and_done_with_it(running_kernel: Any, open_page: Any, artifacts: Path) -> None:
    view = open_page(running_kernel.url)
    page = view.page
    serving = '#panel-failovers tr[data-group="feeds"] .serving'
    page.wait_for_selector(serving, timeout=5_000)
    assert page.inner_text(serving) == "feed:a"
    page.fill("#token", "")
    page.click('#panel-failovers tr[data-group="feeds"] button.failover')
    page.wait_for_selector("#action-result.error", timeout=5_000)
    assert "refused (401)" in page.inner_text("#action-result")
    page.fill("#token", "not-the-token")
    page.click('#panel-failovers tr[data-group="feeds"] button.failover')
    page.wait_for_function("() => document.getElementById('action-result').textContent.includes('403')", timeout=5_000)
    assert page.inner_text(serving) == "feed:a"
    assert running_kernel.call(lambda: running_kernel.get("ha").failover.active_id("feeds")) == "feed:a"
    page.fill("#token", running_kernel.token)
    page.click('#panel-failovers tr[data-group="feeds"] button.failover')
    page.wait_for_function(f"() => document.querySelector('{serving}').textContent === 'feed:b'", timeout=5_000)
    # The event stream may show the switch before the action's own answer is read.
    page.wait_for_function("() => document.getElementById('action-result').textContent.includes('done')", timeout=5_000)
    assert running_kernel.call(lambda: running_kernel.get("ha").failover.active_id("feeds")) == "feed:b"
    assert len(view.dialogs) == 3 and all("Fail over group feeds" in d for d in view.dialogs)
    page.wait_for_function("() => document.querySelectorAll('#panel-audit tbody tr').length >= 3", timeout=5_000)
    audit = page.inner_text("#panel-audit")
    assert audit.count("refused") == 2 and "ok" in audit
    assert view.not_reloaded()
    page.screenshot(path=str(artifacts / "dashboard-failover.png"), full_page=True)
    # Chromium logs the two refused requests themselves; nothing else may be logged.
    assert [e.split("status of ")[-1] for e in view.errors] == ["401 (Unauthorized)", "403 (Forbidden)"]


def test_the_page_says_when_its_data_is_stale(running_kernel: Any, open_page: Any, artifacts: Path) -> None:
    view = open_page(running_kernel.url)
    page = view.page
    page.wait_for_function("() => document.getElementById('freshness').textContent.startsWith('live')", timeout=5_000)
    web = running_kernel.get("web")
    running_kernel.call(web.stop)  # the dashboard's server goes away; the page keeps its last state
    page.wait_for_selector("#stale:not([hidden])", timeout=8_000)
    assert "stale" in page.inner_text("#freshness")
    assert page.locator('#panel-components tr[data-component="ha"]').count() == 1
    page.screenshot(path=str(artifacts / "dashboard-stale.png"), full_page=True)


def test_the_page_fits_a_phone(running_kernel: Any, open_page: Any, artifacts: Path) -> None:
    view = open_page(running_kernel.url, width=390, height=844)
    page = view.page
    page.wait_for_selector('#panel-failovers tr[data-group="feeds"]', timeout=5_000)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"page is {overflow}px wider than a phone screen"
    box = page.locator("#panel-components").bounding_box()
    assert box is not None and box["width"] <= 390
    page.screenshot(path=str(artifacts / "dashboard-phone.png"), full_page=True)
    assert view.errors == []


def test_overview_screenshot_of_a_busy_kernel(sim_kernel: Any, open_page: Any, breaker: CircuitBreaker, artifacts: Path) -> None:
    """The screenshot docs/dashboard.md shows: a kernel trading on the simulator with an open breaker, a firing
    alert, a failover in the history and a reconciled ledger."""
    running_kernel = sim_kernel.kernel
    breaker.force_open(reason="5 consecutive failures")
    healthy = registry.get_or_create(f"market-data-{uuid.uuid4().hex[:4]}", failure_threshold=5)
    try:
        healthy.call_sync(lambda: None)
        alerts = running_kernel.get("alerts")
        running_kernel.call(lambda: alerts.send_alert_nowait(source="resilience", level="error", title=f"breaker {breaker.name} opened", message="5 consecutive failures"))
        token = {"Authorization": f"Bearer {running_kernel.token}"}
        assert httpx.post(running_kernel.url + "/api/failovers/feeds/failover", json={"reason": "feed:a stale"}, headers=token).status_code == 200
        view = open_page(running_kernel.url, width=1366, height=2400)
        page = view.page
        page.wait_for_selector("#panel-breakers tr.state-open", timeout=5_000)
        page.wait_for_selector("#panel-alerts button.ack", timeout=5_000)
        page.wait_for_function("() => document.querySelector('#panel-ledger').textContent.includes('opening balance')", timeout=10_000)
        page.wait_for_timeout(1500)  # a few more health points for the charts
        page.screenshot(path=str(artifacts / "dashboard.png"))
        assert view.errors == []
    finally:
        registry.remove(healthy.name)


def test_when_reads_need_the_token_the_page_asks_for_it_then_loads(make_kernel: Any, browser: Any) -> None:
    k = make_kernel("require_token_for_reads = true")
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    try:
        page = context.new_page()
        page.goto(k.url + "/")
        page.wait_for_function("() => document.getElementById('freshness').textContent.includes('need the dashboard token')", timeout=5_000)
        assert page.locator("#panel-components tr[data-component]").count() == 0  # nothing leaked
        page.fill("#token", k.token)
        page.wait_for_selector('#panel-components tr[data-component="web"]', timeout=8_000)
    finally:
        context.close()
