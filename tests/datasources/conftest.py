from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest


def book_line(symbol: str, bid: str, ask: str, seq: int | None = None, source: str = "rec") -> str:
    event: dict[str, Any] = {"kind": "book", "time": "2026-01-01T00:00:00Z", "source": source, "symbol": symbol,
                             "bids": [[bid, "1"]], "asks": [[ask, "2"]]}
    if seq is not None:
        event["sequence"] = seq
    return json.dumps(event)


@pytest.fixture
def recording(tmp_path: Path) -> Any:
    """``recording(lines, name="feed.jsonl")`` writes a replay file and returns its path."""

    def write(lines: list[str], name: str = "feed.jsonl") -> Path:
        path = tmp_path / name
        path.write_text("\n".join(lines) + "\n")
        return path

    return write


@pytest.fixture
def book() -> Any:
    return book_line
