"""The local admin credential: how commands on this machine act on the running kernel.

On its first start the kernel creates ``<data_dir>/admin.token`` (a random token, file mode
0600, readable only by the user running the kernel) and accepts it wherever the dashboard token
is accepted. Commands such as ``hrkernel signal`` read it from the same ``data_dir`` and send it
as ``Authorization: Bearer``, so an operator never copies tokens around, and anyone who can read
the file could already read the journal and ledger beside it. The token is never logged (it is
registered as a secret for redaction) and never printed.

When the dashboard listens, the kernel also writes the URL it serves on to
``<data_dir>/web.url``, so the commands find it even when ``[dashboard] port`` is 0 or comes from
the environment.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

ADMIN_TOKEN_FILE = "admin.token"
URL_FILE = "web.url"


def ensure_admin_token(data_dir: str | Path) -> str:
    """The local admin token, created (mode 0600) if there is none yet."""
    path = Path(data_dir) / ADMIN_TOKEN_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: two processes starting at once cannot both create (and disagree on) the token.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        token = read_admin_token(data_dir)
        if token is None:
            raise OSError(f"{path} exists but is empty; delete it so the kernel makes a new one") from None
        return token
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(token + "\n")
    return token


def read_admin_token(data_dir: str | Path) -> str | None:
    """The token a running kernel accepts, or None when it has never started with this data_dir."""
    try:
        token = (Path(data_dir) / ADMIN_TOKEN_FILE).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return token or None


def write_url(data_dir: str | Path, url: str) -> None:
    path = Path(data_dir) / URL_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(url + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_url(data_dir: str | Path) -> str | None:
    try:
        return (Path(data_dir) / URL_FILE).read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None


def clear_url(data_dir: str | Path) -> None:
    (Path(data_dir) / URL_FILE).unlink(missing_ok=True)
