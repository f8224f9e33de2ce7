"""What counts as a secret: credential-looking key names."""

from __future__ import annotations

import re

_SECRET_KEY = re.compile(
    r"(token|secret|password|passwd|passphrase|api_?key|private_?key|auth_?sid|authorization|cookie)", re.I
)


def is_secret_key(key: str) -> bool:
    """True for key names that usually hold credentials (token, secret, password, api_key, ...)."""
    return bool(_SECRET_KEY.search(key))
