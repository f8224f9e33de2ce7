"""The README's quick start, line by line: run the embedded default, send a signal, see the
filled order, reach the dashboard."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def quick_start_lines() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Quick start\n"):]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None
    return [line.split("#", 1)[0].strip() for line in block.group(1).splitlines() if line.strip()]


def test_the_quick_start_reaches_a_filled_order(
    kernel_process: Callable[..., object], tmp_path: Path, unused_port: Callable[[], int]
) -> None:
    shutil.copy(ROOT / "hr.toml", tmp_path / "hr.toml")
    port = unused_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HRKERNEL_")}
    env["HRKERNEL_DASHBOARD_PORT"] = str(port)
    lines = quick_start_lines()
    assert lines[0].startswith("python3 -m venv")  # installing is what this test environment did
    kernel = None
    outputs: dict[str, str] = {}
    for line in lines[1:]:
        line = line.replace(":8080", f":{port}")
        if line.startswith("hrkernel run"):
            args = shlex.split(line.rstrip("&").strip())
            kernel = kernel_process(tmp_path / args[2], env={"HRKERNEL_DASHBOARD_PORT": str(port)}, cwd=tmp_path)
            kernel.wait_for("orders_trading_enabled", timeout=30)  # type: ignore[attr-defined]
        elif line.startswith("hrkernel "):
            args = shlex.split(line)
            deadline = time.monotonic() + 20
            while True:  # orders: look again until verification finished, as a person would
                done = subprocess.run([sys.executable, "-m", "hrkernel", *args[1:]], cwd=tmp_path, env=env,
                                      text=True, capture_output=True, timeout=60)
                assert done.returncode == 0, (line, done.stderr)
                if args[1] != "orders" or "VERIFIED" in done.stdout or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            outputs[args[1]] = done.stdout
        elif line.startswith("curl"):
            assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200
    assert "accepted" in outputs["signal"]
    assert re.search(r"VERIFIED\s+paper:BTCIRT buy 0\.01 @ market filled 0\.01 ", outputs["orders"]), outputs["orders"]
    assert kernel is not None
    kernel.signal(signal.SIGTERM)  # type: ignore[attr-defined]
    assert kernel.wait(timeout=20) == 0  # type: ignore[attr-defined]
