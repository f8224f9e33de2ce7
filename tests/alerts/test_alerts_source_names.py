"""Alert source names are matched whole: a trailing newline is not a name."""

from __future__ import annotations

import pytest

from hrkernel.alerts import AlertSource


@pytest.mark.parametrize("name", ["exchange\n", "my_plugin\n", "\nexchange", "exchangе"])  # last: Cyrillic е
def test_a_source_name_with_a_newline_or_a_foreign_letter_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="lower-case name"):
        AlertSource(name)


def test_a_plain_name_is_accepted() -> None:
    assert AlertSource("my_plugin.sub-1") == "my_plugin.sub-1"
