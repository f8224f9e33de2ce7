"""The dashboard in real Chromium: positions per strategy with value and P&L, signal outcomes,
the failover history as a chart, and tables that fit their panels at 1400 px and 420 px."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from . import test_web_browser as _browser_tests

browser = _browser_tests.browser
open_page = _browser_tests.open_page

pytestmark = pytest.mark.skipif(not Path(_browser_tests.CHROMIUM).exists(), reason="needs Debian's chromium")

NO_PAGE_OVERFLOW = "document.documentElement.scrollWidth <= window.innerWidth + 1"
PANELS_FIT = """() => [...document.querySelectorAll('section.panel')].every(
    (p) => p.scrollWidth <= p.clientWidth + 1)"""


def _signal(k: Any, **body: str) -> None:
    r = httpx.post(k.url + "/api/signals", json=body, headers={"Authorization": f"Bearer {k.token}"}, timeout=5)
    assert r.status_code == 200, r.text


def _wait(predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met"
        time.sleep(0.1)


@pytest.mark.parametrize("width", [1400, 420])
def test_positions_and_signal_outcomes_fit_the_page(sim_kernel: Any, open_page: Any, artifacts: Path, width: int) -> None:
    k = sim_kernel.kernel
    _signal(k, ticker="BTCIRT", action="buy", amount="0.002", strategy="alpha", id="a1")
    _signal(k, ticker="BTCIRT", action="buy", amount="0.0000001", strategy="alpha", id="tiny")

    def credited() -> bool:
        data = httpx.get(k.url + "/api/positions", timeout=5).json().get("data") or []
        return any(p["strategy"] == "alpha" and p["amount"] == "0.002" for p in data)
    _wait(credited)
    view = open_page(k.url, width=width, height=900)
    page = view.page
    row = '#panel-positions tr[data-position="nobitex:alpha:BTCIRT"]'
    page.wait_for_selector(row, timeout=10_000)
    cells = page.inner_text(row)
    assert "0.002 BTC" in cells and "RLS" in cells  # value and P&L in the quote currency

    # The simulator's price moves between the API read and the page's refresh, so the P&L the
    # page shows must match the API's at some moment, not at the instant of one read.
    def page_shows_api_pnl() -> bool:
        pnl = httpx.get(k.url + "/api/positions", timeout=5).json()["data"][0]["pnl"]
        assert pnl is not None
        return bool(pnl in page.inner_text(row).replace("\t", " "))
    _wait(page_shows_api_pnl)
    page.wait_for_selector('#panel-signals tr[data-signal="alpha:tiny"].outcome-refused', timeout=10_000)
    assert "rounds down to 0" in page.inner_text('#panel-signals tr[data-signal="alpha:tiny"]')
    assert "0.000000000" not in page.inner_text("#panel-orders")  # amounts as written, not 18 decimals
    assert page.evaluate(NO_PAGE_OVERFLOW), "the page scrolls sideways"
    assert page.evaluate(PANELS_FIT), "a table is cut off by its panel"
    page.screenshot(path=str(artifacts / f"dashboard-positions-{width}.png"), full_page=True)
    assert view.errors == []


def test_failover_history_is_drawn_as_a_chart(running_kernel: Any, open_page: Any, artifacts: Path) -> None:
    r = httpx.post(running_kernel.url + "/api/failovers/feeds/failover", json={"reason": "chart test"},
                   headers={"Authorization": f"Bearer {running_kernel.token}"}, timeout=5)
    assert r.status_code == 200, r.text
    view = open_page(running_kernel.url, width=1400, height=900)
    page = view.page
    page.wait_for_selector('#panel-failovers [data-chart="failovers"] svg rect', timeout=10_000)
    title = page.text_content('#panel-failovers [data-chart="failovers"] svg rect title') or ""
    assert "feed:a → feed:b" in title and "chart test" in title
    assert page.locator('#panel-health [data-chart] polyline').count() >= 1  # health drawn too
    page.screenshot(path=str(artifacts / "dashboard-failover-chart.png"), full_page=True)
    assert view.errors == []
