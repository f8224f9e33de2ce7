"""Scenario files: every shipped one loads; a bad one is refused naming the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from hrkernel_chaos import ScenarioError, load_scenario, parse_scenario

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("path", sorted((ROOT / "scenarios").glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_scenario_loads(path: Path) -> None:
    scenario = load_scenario(path)
    assert scenario.name
    assert scenario.signals >= 1


def test_unknown_key_is_named() -> None:
    with pytest.raises(ScenarioError, match=r"x\.toml.*sigals"):
        parse_scenario({"name": "x", "sigals": 3}, "x.toml")


def test_bad_fault_values_are_all_reported() -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenario({"name": "x", "signals": 5, "faults": [
            {"at": 9, "kind": "sim_script", "fault": "explode"},
            {"at": 1, "kind": "redis_restart"},
        ]}, "bad.toml")
    message = str(info.value)
    assert "faults[0].at: 9 is not between 1 and signals (5)" in message
    assert "faults[0].fault: 'explode'" in message
    assert "faults[1].kind: redis_restart needs kernels >= 2" in message


def test_unknown_fault_kind_is_refused() -> None:
    with pytest.raises(ScenarioError, match="kind"):
        parse_scenario({"name": "x", "faults": [{"at": 1, "kind": "meteor"}]}, "m.toml")


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="no such scenario file"):
        load_scenario(tmp_path / "nope.toml")


def test_the_docs_scenario_example_loads() -> None:
    """The TOML example of docs/chaos.md is a valid scenario (fault kinds, expect)."""
    import tomllib

    page = (ROOT / "docs" / "chaos.md").read_text()
    at = page.index('name = "my-game-day"')
    block = page[page.rindex("```toml", 0, at) + len("```toml"):page.index("```", at)]
    scenario = parse_scenario(tomllib.loads(block), "docs/chaos.md")
    assert scenario.name == "my-game-day"
    assert [f.kind for f in scenario.faults] == ["sim_script"]


def test_new_fault_kinds_are_checked() -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenario({"name": "x", "signals": 5, "faults": [
            {"at": 1, "kind": "redis_cut", "mode": "unplug"},
            {"at": 2, "kind": "duckdb_readonly", "target": "standby"},
            {"at": 3, "kind": "feed_stale", "expect": [{"source": "health", "title": "(unclosed"}]},
        ]}, "new.toml")
    message = str(info.value)
    assert "faults[0].kind: redis_cut needs kernels >= 2" in message
    assert "faults[0].mode: 'unplug'" in message
    assert "faults[1].target: standby needs kernels >= 2" in message
    assert "faults[2].expect[0].title: not a regular expression" in message
