"""docs/compat.md: every form in the table is listed, and the page's examples run as written
(in order, in one namespace) against the simulator and a private Redis."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import anyio
import pytest

import hrkernel.compat

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "compat.md"


def blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", PAGE.read_text(), re.S)


def test_the_table_lists_every_compat_name_and_the_readme_links_the_page() -> None:
    text = PAGE.read_text()
    table = text[text.index("| The design's form |"):text.index("## Differences worth knowing")]
    for name in hrkernel.compat.__all__:
        if name in ("exact_decimal", "FailoverEvent", "FailoverManager", "ShutdownReport", "TradingEngineSteps",
                    "HealthCheckResult", "ReconciliationReport"):
            continue  # helpers and result types, named in the rows of the forms that return them
        assert name in table, name
    for form in ("get_failover_manager()", "register_component(", "create_health_dashboard()", "execute(fn",
                 "create_client_func=", "create_transaction(type=", "execute_transaction(tx)", "api_key",
                 "level_thresholds", "run_leader_election()", "reconcile_on_startup()", "check_health()",
                 "shutdown_sequence()", "record_failover("):
        assert form in table, form
    assert "(docs/compat.md)" in (ROOT / "README.md").read_text()


async def test_the_pages_examples_run(sim: Any, redis_server: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from .conftest import SIM_TOKEN

    namespace: dict[str, Any] = {"SIM_URL": sim.base_url, "TOKEN": SIM_TOKEN, "REDIS_URL": redis_server.url,
                                 "DATA_DIR": str(tmp_path)}
    manager = hrkernel.compat.get_failover_manager()
    try:
        with anyio.fail_after(120):
            for source in blocks():
                code = compile(source, str(PAGE), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
                result = eval(code, namespace)
                if result is not None:
                    await result
    finally:
        manager.groups.pop("exchanges", None)
        await manager.stop()
    out = capsys.readouterr()
    assert "True VERIFIED 0.001" in out.out
    assert "order filled" in out.err  # the console channel writes to stderr
    assert "[('stop_new_orders', 'ok'), ('cancel_open_orders', 'ok'), ('close_positions', 'skipped'), " \
           "('flush', 'ok'), ('release_and_close', 'ok')]" in out.out
    assert "leading with token" in out.out
