"""Child processes of a chaos run: the simulator, a private redis-server, kernels.

Every process is started in its own session on 127.0.0.1 and killed by :meth:`Processes.close`,
whatever happened before (the runner calls it in ``finally``)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float, proc: subprocess.Popen[Any] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited ({proc.returncode}) before listening on 127.0.0.1:{port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


class Child:
    """One child process; its output goes to ``log_path`` (and, for kernels, parsed JSON events)."""

    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict[str, str] | None = None,
                 cwd: Path | None = None, parse_json: bool = False) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.env = env
        self.cwd = cwd
        self.parse_json = parse_json
        self.events: list[dict[str, Any]] = []
        self.lines: list[str] = []
        self.proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._log: IO[str] | None = None
        self.paused = False

    def start(self) -> None:
        self._log = self.log_path.open("a")
        self.proc = subprocess.Popen(
            self.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=self.env, cwd=str(self.cwd) if self.cwd else None, text=True, start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, args=(self.proc, self._log), daemon=True)
        self._reader.start()

    def _read(self, proc: subprocess.Popen[str], log: IO[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.append(line)
            try:
                log.write(line)
                log.flush()
            except ValueError:
                pass
            if self.parse_json:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if isinstance(event, dict):
                    event["_t"] = time.time()
                    self.events.append(event)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def send(self, signum: int) -> None:
        if self.alive:
            assert self.proc is not None
            self.proc.send_signal(signum)

    def kill(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            if self.paused:
                self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
        self.proc.wait(10)
        if self._reader is not None:
            self._reader.join(5)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            if self.paused:
                self.proc.send_signal(signal.SIGCONT)
                self.paused = False
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self._reader is not None:
            self._reader.join(5)
        return self.proc.returncode

    def close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def find(self, event: str, since: float = 0.0, **fields: Any) -> dict[str, Any] | None:
        for seen in list(self.events):
            if seen.get("event") == event and seen["_t"] >= since and all(seen.get(k) == v for k, v in fields.items()):
                return seen
        return None

    def wait_for(self, event: str, timeout: float, since: float = 0.0, **fields: Any) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.find(event, since, **fields)
            if found is not None:
                return found
            if not self.alive:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode if self.proc else '-'}) "
                                   f"before {event!r}; see {self.log_path}")
            time.sleep(0.05)
        raise TimeoutError(f"{self.name}: no {event!r} within {timeout}s; see {self.log_path}")


class Processes:
    """Everything a run started, so that all of it is killed at the end."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.children: list[Child] = []

    def python_env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HRKERNEL_")}
        env["PYTHONUNBUFFERED"] = "1"
        env.update(extra or {})
        return env

    def start(self, child: Child) -> Child:
        self.children.append(child)
        child.start()
        return child

    def simulator(self, port: int, config: Path) -> Child:
        child = self.start(Child("simulator", [sys.executable, "-m", "hrkernel", "sim", "serve", "--port", str(port),
                                               "--config", str(config)], self.workdir / "simulator.log",
                                 env=self.python_env()))
        wait_for_port(port, 30, child.proc)
        return child

    def redis(self, port: int) -> Child:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not on PATH (needed for more than one kernel)")
        rdir = self.workdir / "redis"
        rdir.mkdir(exist_ok=True)
        # The deployment the README documents: AOF persistence, fsynced on every write, so a
        # restart keeps the bus's signals, the lease and the replication stream (a Redis that
        # comes back empty is covered by tests/ha; the bus cannot keep signals it lost).
        child = Child("redis", [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
                                "--appendfsync", "always", "--dir", str(rdir), "--daemonize", "no",
                                "--loglevel", "warning"],
                      self.workdir / "redis.log")
        self.start(child)
        wait_for_port(port, 10, child.proc)
        return child

    def kernel(self, name: str, config: Path, env: dict[str, str]) -> Child:
        return self.start(Child(name, [sys.executable, "-m", "hrkernel", "run", str(config)],
                                self.workdir / f"kernel-{name}.log", env=self.python_env(env),
                                cwd=self.workdir, parse_json=True))

    def close(self) -> None:
        for child in reversed(self.children):
            try:
                child.kill()
            except Exception:  # noqa: BLE001 - keep killing the others
                pass
            child.close_log()
