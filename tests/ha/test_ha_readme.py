"""The README's High availability section: its TOML examples are valid configs."""

from __future__ import annotations

import re
from pathlib import Path

from hrkernel.config import load_config_text

README = Path(__file__).resolve().parents[2] / "README.md"


def ha_section() -> str:
    text = README.read_text()
    start = text.index("## High availability\n")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def test_every_toml_example_of_the_ha_section_loads() -> None:
    blocks = re.findall(r"```toml\n(.*?)```", ha_section(), flags=re.S)
    assert len(blocks) == 2
    env = {"HRKERNEL_INSTANCE": "hr-a", "HRKERNEL_HA_TOKEN": "example-token", "HRKERNEL_WEBHOOK_SECRET": "s" * 32,
           "HRKERNEL_ADMIN_TOKEN": "a" * 32, "NOBITEX_TOKEN": "t" * 40}
    pair = load_config_text(blocks[0], "README pair", environ=env).config
    assert pair.ha.backend == "redis" and pair.kernel.instance_id == "hr-a"
    # The complete two-kernel setup: the Redis bus, the webhook fed to both, the shared token budget.
    assert pair.bus.backend == "redis" and pair.webhook.enabled and pair.orders.recovery_concurrency == 8
    assert float(pair.ha.lease_ttl) + float(pair.ha.renew_interval) <= 5.0
    groups = load_config_text(blocks[1], "README groups", environ=env).config
    assert groups.ha.groups["market_data"].components == ["datasource:feed_a", "datasource:feed_b"]
