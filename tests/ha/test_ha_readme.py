"""docs/ha.md (High availability): its TOML examples are valid configs."""

from __future__ import annotations

import re
from pathlib import Path

from hrkernel.config import load_config_text

PAGE = Path(__file__).resolve().parents[2] / "docs" / "ha.md"


def ha_section() -> str:
    return PAGE.read_text()


def test_every_toml_example_of_the_ha_section_loads() -> None:
    blocks = re.findall(r"```toml\n(.*?)```", ha_section(), flags=re.S)
    assert len(blocks) == 3
    env = {"HRKERNEL_INSTANCE": "hr-a", "HRKERNEL_HA_TOKEN": "example-token", "HRKERNEL_WEBHOOK_SECRET": "s" * 32,
           "HRKERNEL_ADMIN_TOKEN": "a" * 32, "NOBITEX_TOKEN": "t" * 40}
    pair = load_config_text(blocks[0], "docs/ha.md pair", environ=env).config
    assert pair.ha.backend == "redis" and pair.kernel.instance_id == "hr-a"
    # The complete two-kernel setup: the Redis bus, the webhook fed to both, the shared token budget.
    assert pair.bus.backend == "redis" and pair.webhook.enabled and pair.orders.recovery_concurrency == 8
    assert float(pair.ha.lease_ttl) + float(pair.ha.renew_interval) <= 5.0
    groups = load_config_text(blocks[1], "docs/ha.md groups", environ=env).config
    assert groups.ha.groups["market_data"].components == ["datasource:feed_a", "datasource:feed_b"]
    cluster = load_config_text(blocks[2], "docs/ha.md cluster", environ=env).config.ha.groups["venues"]
    assert (cluster.mode, cluster.active, cluster.min_active, cluster.balance) == ("cluster", 2, 2, "weighted")
    assert cluster.weights == {"exchange:nobitex_a": 2}


def test_the_page_quotes_the_min_active_error_as_the_kernel_words_it() -> None:
    from hrkernel.errors import ConfigError

    quoted = re.search(r"\(`(ha\.groups\.venues\.min_active: [^`]+)`\)", ha_section())
    assert quoted is not None
    text = '[ha.groups.venues]\nmode = "cluster"\ncomponents = ["a", "b", "c"]\nactive = 2\nmin_active = 3\n'
    try:
        load_config_text(text, "hr.toml")
    except ConfigError as exc:
        assert quoted.group(1) in str(exc)
    else:
        raise AssertionError("min_active > active was accepted")
