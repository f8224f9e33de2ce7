"""The README's "Resilience primitives" examples run, in order, in one namespace."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.anyio


def section_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text()
    start = text.index("## Resilience primitives")
    end = text.index("\n## ", start + 1)
    return re.findall(r"```python\n(.*?)```", text[start:end], flags=re.S)


async def test_readme_examples_run() -> None:
    blocks = section_blocks()
    assert len(blocks) >= 6
    namespace: dict[str, object] = {"__name__": "readme"}
    for index, block in enumerate(blocks):
        code = compile(block, f"README resilience example {index + 1}", "exec",
                       flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        result = eval(code, namespace)
        if result is not None:
            await result
