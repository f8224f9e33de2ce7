from __future__ import annotations

import sys
from pathlib import Path

import pytest

CONSUMER = r'''
import sys, anyio
from hrkernel.bus.config import RedisBusSettings
from hrkernel.bus.redis_streams import RedisStreamsBus

async def main(url, prefix):
    bus = RedisStreamsBus(RedisBusSettings(url=url, prefix=prefix, block=0.2), consumer_name="doomed")
    async with bus.subscribe("jobs", "workers") as sub:
        async for d in sub:
            print("GOT", d.event.signal_id, flush=True)
            await anyio.sleep(3600)  # "processing" until SIGKILL: never acks

anyio.run(main, sys.argv[1], sys.argv[2])
'''


@pytest.fixture
def doomed_consumer_script(tmp_path: Path) -> list[str]:
    """Command line of a real consumer process that takes one message and hangs without acking."""
    script = tmp_path / "doomed_consumer.py"
    script.write_text(CONSUMER)
    return [sys.executable, str(script)]
