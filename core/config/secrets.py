"""What counts as a secret, and how config values are kept out of logs, alerts and errors.

Masking rules (README "Configuration reference" says the same; keep them in step):

1. a value whose key, or the key of any table it sits in, looks like a credential
   (:func:`is_secret_key`) is secret as a whole, and so is every ``${VAR}`` (or default) it is
   built from, on its own: ``headers = { Authorization = "Bearer ${API_TOKEN}" }`` masks
   ``Bearer <token>`` and ``<token>``;
2. a ``${VAR}`` whose *name* looks like a credential is secret wherever it is used: its value on
   its own and the whole string around it (``tgram://${TG_TOKEN}/chat``);
3. under a key named ``url``, ``urls`` or ``*_url``, a value taken from the environment is secret
   as a whole (webhook and apprise URLs usually carry a credential in their path);
4. the password of any ``scheme://user:password@host`` URL.

Separately, a config *error* never quotes a rejected value that came from the environment: it
is shown as the ``${VAR}`` reference it was written as (``hrkernel.config.validate.showing_env``),
and secrets are masked in every error (:func:`conceal`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

_SECRET_KEY = re.compile(
    r"(token|secret|password|passwd|passphrase|api_?key|private_?key|auth_?sid|authorization|cookie)", re.I
)
_URL_KEY = re.compile(r"^(url|urls|.*_url)$", re.I)
_URL_PASSWORD = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/?#@\s:]*:([^/?#@\s]+)@")
MASK = "***"
MIN_SUBSTRING = 4
"""Shorter values would mask innocent text everywhere; they are only hidden as whole values."""


def is_secret_key(key: str) -> bool:
    """True for key names that usually hold credentials (token, secret, password, api_key, ...)."""
    return bool(_SECRET_KEY.search(key))


def is_url_key(key: str) -> bool:
    """True for ``url``, ``urls`` and ``*_url`` keys (masking rule 3)."""
    return bool(_URL_KEY.match(key))


def url_passwords(value: str) -> list[str]:
    """The password part of every ``scheme://user:password@host`` URL in ``value``."""
    return _URL_PASSWORD.findall(value)


def conceal(text: str, shown_as: Mapping[str, str]) -> str:
    """Replace every key of ``shown_as`` found in ``text`` by its value, longest first, in one pass.

    Values of :data:`MIN_SUBSTRING` characters or more are replaced wherever they occur; shorter
    ones only where they appear quoted (``'ab'`` or ``"ab"``), as error messages quote values.
    """
    if not shown_as or not text:
        return text
    table: dict[str, str] = {}
    for value, shown in shown_as.items():
        if not value:
            continue
        if len(value) >= MIN_SUBSTRING:
            table[value] = shown
        else:
            table[repr(value)] = repr(shown)
            table[f'"{value}"'] = f'"{shown}"'
    if not table:
        return text
    pattern = re.compile("|".join(re.escape(v) for v in sorted(table, key=len, reverse=True)))
    return pattern.sub(lambda m: table[m.group(0)], text)


def shown_as_mask(secrets: Iterable[str]) -> dict[str, str]:
    return {s: MASK for s in secrets if s}
