"""Fidelity: the request/response examples of Nobitex's docs, replayed against the simulator.

``data/nobitex_examples.json`` holds the examples transcribed by hand with a source note each;
see its ``about`` for what is compared.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from hrkernel_sim.config import SimConfig, to_builtins

pytestmark = pytest.mark.anyio

DATA = json.loads((Path(__file__).parent / "data" / "nobitex_examples.json").read_text("utf-8"))
EXAMPLES = {ex["name"]: ex for ex in DATA["examples"]}


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    return type(value).__name__


def shape_problems(doc: object, got: object, path: str, loose: set[str]) -> list[str]:
    """Where ``got`` lacks a field of ``doc`` or has it with another JSON type."""
    if doc is None:
        return []
    if path.lstrip(".") in loose:
        ok = isinstance(got, int | str) and not isinstance(got, bool)
        return [] if ok else [f"{path}: expected int or string, found {got!r}"]
    if _kind(doc) != _kind(got):
        return [f"{path or '<root>'}: docs have {_kind(doc)} {doc!r}, simulator {_kind(got)} {got!r}"]
    problems: list[str] = []
    if isinstance(doc, dict):
        assert isinstance(got, dict)
        for key, value in doc.items():
            if key not in got:
                problems.append(f"{path}.{key}: missing (simulator has {sorted(got)})")
            else:
                problems += shape_problems(value, got[key], f"{path}.{key}", loose)
    elif isinstance(doc, list) and doc:
        assert isinstance(got, list)
        if not got:
            problems.append(f"{path}: empty list, the docs show items")
        else:
            problems += shape_problems(doc[0], got[0], f"{path}.0", loose)
    return problems


def pick(body: object, dotted: str) -> object:
    for part in dotted.split("."):
        body = body[int(part)] if isinstance(body, list) else body[part]  # type: ignore[index]
    return body


def substitute(value: Any, ids: dict[str, int]) -> Any:
    if isinstance(value, dict):
        return {k: substitute(v, ids) for k, v in value.items()}
    if isinstance(value, str) and value in ids:
        return ids[value]
    return value


@pytest.mark.parametrize("name", sorted(EXAMPLES))
async def test_docs_example_replays_with_the_same_shape(name, sim_factory):
    ex = EXAMPLES[name]
    markets = to_builtins(SimConfig())["markets"]  # the default markets (BTCIRT, ETHIRT, ...)
    async with sim_factory(markets=markets) as sim, httpx.AsyncClient(base_url=sim.base_url) as c:
        auth = {"Authorization": "Token tok-alice"}
        setup = ex.get("setup", {})
        for symbol, price in setup.get("prices", {}).items():
            r = await c.post(f"/_sim/markets/{symbol}", json={"price": price}, headers=sim.admin_headers)
            assert r.status_code == 200
        ids: dict[str, int] = {}
        for i, order in enumerate(setup.get("orders", [])):
            r = await c.post("/market/orders/add", json=order, headers=auth)
            assert r.json()["status"] == "ok", r.text
            ids[f"$order{i}"] = r.json()["order"]["id"]
        if "fault" in setup:
            await c.post("/_sim/faults/script", json=setup["fault"], headers=sim.admin_headers)
        req = ex["request"]
        headers = {} if req.get("auth") is False else (
            {"Authorization": "Token 0000bad"} if req.get("auth") == "bad" else auth)
        r = await c.request(req["method"], req["path"], params=req.get("query"),
                            json=substitute(req.get("json"), ids) if "json" in req else None,
                            headers=headers)
    assert r.status_code == ex["status"], r.text
    got = r.json()
    if ex.get("exact"):
        assert got == ex["response"]
        return
    assert shape_problems(ex["response"], got, "", set(ex.get("loose", []))) == []
    for dotted in ex.get("equal", []):
        assert pick(got, dotted) == pick(ex["response"], dotted), dotted


def test_every_example_names_its_source():
    for ex in DATA["examples"]:
        assert ex["source"].split()[0] in ("DOC", "PM"), ex["name"]
