"""The examples of docs/resilience.md (Resilience primitives) run, in order, in one namespace."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.anyio


def section_blocks() -> list[str]:
    text = (ROOT / "docs" / "resilience.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


async def test_readme_examples_run() -> None:
    blocks = section_blocks()
    assert len(blocks) >= 6
    namespace: dict[str, object] = {"__name__": "readme"}
    for index, block in enumerate(blocks):
        code = compile(block, f"docs/resilience.md example {index + 1}", "exec",
                       flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        result = eval(code, namespace)
        if result is not None:
            await result
