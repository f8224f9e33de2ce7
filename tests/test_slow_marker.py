"""The inner loop's slow list names modules that exist: a renamed test module must not silently
drop out of it and slow down `pytest -m "not slow"`."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import SLOW_FOLDERS, SLOW_MODULES

TESTS = Path(__file__).parent


def test_every_module_on_the_slow_list_exists() -> None:
    missing = sorted(m for m in SLOW_MODULES if not (TESTS / m).is_file())
    missing += [f for f in SLOW_FOLDERS if not (TESTS / f).is_dir()]
    assert missing == [], f"tests/conftest.py lists modules that do not exist: {missing}"
