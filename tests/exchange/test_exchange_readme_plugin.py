"""The minimal exchange plugin of docs/exchange-plugins.md (*Writing an exchange plugin*), built
from the page's own code, pip-installed, discovered through its entry point, and passing the conformance kit —
both in-process and by running the test file the guide shows, with pytest, in a subprocess."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from typing import Any

import pytest

from hrkernel.exchange.shapes import contract_problems
from hrkernel.plugins import PluginHost
from hrkernel.testing import RULES, ConformanceOptions, run_conformance

FAULT_RULES = {"lost_placement_answer_is_resolved_by_client_id", "lost_cancel_answer_is_resolved_by_lookup",
               "unavailable_placement_is_unknown_or_not_placed", "unavailable_reads_count_as_failures"}


@pytest.fixture(scope="module")
def paper_plugin(tmp_path_factory: pytest.TempPathFactory, doc_files: Any) -> Any:
    tmp_path = tmp_path_factory.mktemp("paper")
    files = doc_files("exchange-plugins.md")
    assert set(files) == {"pyproject.toml", "hrkernel_paper/__init__.py", "tests/test_paper_conformance.py"}
    source = tmp_path / "hrkernel-paper"
    for name, text in files.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(text)
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(source)], check=True, capture_output=True)
    sys.path.insert(0, str(site))
    importlib.invalidate_caches()
    try:
        yield source, site
    finally:
        sys.path.remove(str(site))
        sys.modules.pop("hrkernel_paper", None)
        importlib.invalidate_caches()


@pytest.mark.anyio
async def test_the_guides_plugin_is_discovered_and_passes_the_kit(paper_plugin: Any) -> None:
    host = PluginHost(strict=True, quiet=True)
    host.discover()
    assert host.records["paper"].distribution == "hrkernel-paper"
    registration = host.registrations("exchange")["paper"]
    assert registration.plugin == "paper"

    async def make() -> Any:
        assert registration.config is not None
        return registration.factory(registration.config(), None)

    assert contract_problems(await make()) == []
    report = await run_conformance(make, ConformanceOptions(symbol="BTCUSDT"))
    report.raise_for_failures()
    assert {r.rule for r in report.results if r.outcome == "passed"} == set(RULES) - FAULT_RULES
    assert {r.rule for r in report.skipped} == FAULT_RULES


@pytest.mark.slow
def test_the_guides_own_test_file_passes(paper_plugin: Any) -> None:
    source, site = paper_plugin
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), *sys.path])}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          str(source / "tests" / "test_paper_conformance.py")],
                         cwd=source, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    # One test per rule (per anyio backend the plugin's environment runs): none failed.
    passed = re.search(r"(\d+) passed", run.stdout)
    assert passed and int(passed.group(1)) % len(RULES) == 0 and "failed" not in run.stdout, run.stdout[-1000:]
