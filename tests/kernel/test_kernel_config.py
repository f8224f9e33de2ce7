"""hr.toml decoding: every error is reported with its key path, all at once."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from hrkernel.config import load_config, load_config_text
from hrkernel.config.validate import decode
from hrkernel.errors import ConfigError
from hrkernel.types import Amount, ConfigStruct, Duration, SignedAmount

ROOT = Path(__file__).resolve().parents[2]


def test_default_hr_toml_is_valid() -> None:
    loaded = load_config(ROOT / "hr.toml", environ={})
    assert loaded.config.kernel.instance_id == "hr-1"
    assert loaded.config.shutdown.step_timeout == 5.0


@pytest.mark.parametrize(
    ("text", "seconds"),
    [('"250ms"', 0.25), ('"5s"', 5.0), ('"2m"', 120.0), ('"1h"', 3600.0), ('"1.5s"', 1.5)],
)
def test_durations_are_written_with_units(text: str, seconds: float) -> None:
    loaded = load_config_text(f"[shutdown]\nstep_timeout = {text}\n", environ={})
    assert loaded.config.shutdown.step_timeout == pytest.approx(seconds)


def test_every_error_is_listed_not_only_the_first() -> None:
    text = """
[kernel]
instance_idx = "x"
data_dir = 1
[logging]
level = "loud"
format = "xml"
[shutdown]
step_timeout = "soon"
"""
    with pytest.raises(ConfigError) as info:
        load_config_text(text, "hr.toml", environ={})
    paths = [issue.path for issue in info.value.issues]
    assert paths == [
        "kernel.instance_idx",
        "kernel.data_dir",
        "logging.level",
        "logging.format",
        "shutdown.step_timeout",
    ]
    message = str(info.value)
    assert message.startswith("hr.toml: 5 config errors")
    assert "'loud'" in message and "'debug'" in message


def test_env_references_expand_with_defaults_and_name_the_missing_variable() -> None:
    text = '[kernel]\ninstance_id = "${HR_NAME}-${HR_SUFFIX:-a}"\ndata_dir = "${HR_MISSING}"\n'
    loaded = load_config_text(text.replace("${HR_MISSING}", "x"), environ={"HR_NAME": "node"})
    assert loaded.config.kernel.instance_id == "node-a"
    with pytest.raises(ConfigError) as info:
        load_config_text(text, environ={"HR_NAME": "node"})
    [issue] = info.value.issues
    assert issue.path == "kernel.data_dir"
    assert "HR_MISSING" in issue.message


def test_dollar_dollar_escapes_a_literal_dollar() -> None:
    loaded = load_config_text('[kernel]\ninstance_id = "a$${B}"\n', environ={})
    assert loaded.config.kernel.instance_id == "a${B}"


def test_secret_values_are_collected_and_literal_secrets_warned() -> None:
    text = """
[health.checks.x]
api_key = "${MY_KEY}"
password = "hunter22"
url = "${SERVICE_TOKEN}"
"""
    loaded = load_config_text(text, environ={"MY_KEY": "k-123456", "SERVICE_TOKEN": "t-abcdef"})
    assert {"k-123456", "hunter22", "t-abcdef"} <= set(loaded.secrets)
    assert [w.path for w in loaded.warnings] == ["health.checks.x.password"]


def test_toml_syntax_error_names_line_and_column() -> None:
    with pytest.raises(ConfigError) as info:
        load_config_text('[kernel]\ninstance_id = "a"\nbroken = = 1\n', environ={})
    [issue] = info.value.issues
    assert issue.path.startswith("line 3, column")


class _Risk(ConfigStruct, kw_only=True):
    max_notional: Amount
    drift: SignedAmount = SignedAmount("0")
    every: Duration = Duration(1.0)
    limits: dict[str, Amount] = msgspec.field(default_factory=dict)


def test_amounts_decode_exactly_and_reject_floats_and_negatives() -> None:
    value, issues = decode({"max_notional": "0.1", "drift": "-0.3", "limits": {"BTC": "2.5"}}, _Risk)
    assert not issues and value is not None
    assert value.max_notional == Decimal("0.1") and isinstance(value.max_notional, Decimal)
    assert value.drift == Decimal("-0.3")
    assert value.limits == {"BTC": Decimal("2.5")}
    _, issues = decode({"max_notional": 0.1, "limits": {"BTC": "-1"}}, _Risk, "orders")
    assert [(i.path, "string" in i.message or ">= 0" in i.message) for i in issues] == [
        ("orders.max_notional", True),
        ("orders.limits.BTC", True),
    ]


def test_missing_required_key_is_named() -> None:
    _, issues = decode({}, _Risk, "orders")
    assert [(i.path, i.message) for i in issues] == [("orders.max_notional", "required key is missing")]
