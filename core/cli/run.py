"""``hrkernel run``: start the kernel, serve until SIGINT/SIGTERM, shut down gracefully."""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

import anyio
import anyio.abc
import click

from hrkernel import logging as hrlogging
from hrkernel.cli.common import EXIT_FAILURE, build, discover, fail, load, required_config, unwrap
from hrkernel.errors import StartupError


async def _watch_signals(
    kernel: Any, force_after: float, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
) -> None:
    log = hrlogging.get_logger("hrkernel.signals")
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        # Installed before any component starts: a signal during start-up still shuts down cleanly.
        task_status.started()
        count = 0
        async for signum in signals:
            count += 1
            name = signal.Signals(signum).name
            if count == 1:
                log.info("signal_received", signal=name, action="graceful_shutdown")
                kernel.request_stop(name)
                # A thread, not a task: it must fire even if the event loop is wedged.
                timer = threading.Timer(force_after, _force_exit, args=("shutdown deadline passed",))
                timer.daemon = True
                timer.start()
            else:
                log.warning("signal_received", signal=name, action="forced_exit")
                _force_exit(f"second signal {name}", code=130)


def _force_exit(reason: str, code: int = EXIT_FAILURE) -> None:
    hrlogging.get_logger("hrkernel.signals").error("forced_exit", reason=reason, exit_code=code)
    os._exit(code)


async def serve(kernel: Any) -> None:
    async with anyio.create_task_group() as tg:
        await tg.start(_watch_signals, kernel, float(kernel.config.shutdown.force_after))
        await kernel.run()
        tg.cancel_scope.cancel()


@click.command()
@required_config
def run(config: str) -> None:
    """Start the kernel described by CONFIG (an hr.toml) and run until SIGINT/SIGTERM.

    Logs one "ready" event listing what started. The first signal shuts down gracefully (each
    step logged with its duration and outcome) and exits 0; a second signal forces exit 130.
    Exit 2: bad config or a failing plugin in strict mode; exit 1: a component failed to start.
    """
    loaded = load(config)
    cfg = loaded.config
    hrlogging.configure(cfg.logging.level, cfg.logging.format, loaded.secrets)
    for warning in loaded.warnings:
        hrlogging.get_logger("hrkernel.config").warning("config_warning", path=warning.path, message=warning.message)
    host = discover(loaded)
    kernel = build(loaded, host)
    try:
        anyio.run(serve, kernel)
    except BaseException as exc:
        real = unwrap(exc)
        if isinstance(real, StartupError):
            fail(loaded.conceal(str(real)), EXIT_FAILURE)
        if isinstance(real, KeyboardInterrupt):
            fail("interrupted", 130)
        raise
