"""How commands reach the running kernel: its URL and the local admin token under data_dir.

See :mod:`hrkernel.web.local_admin`. A command that changes state (a signal, a transfer, a drift
acknowledgement) goes through the kernel that holds the orders database, authenticated with the
token the kernel created; the token is sent, never printed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from hrkernel.web.local_admin import read_admin_token, read_url


class NoKernel(Exception):
    """No kernel answers for this data_dir (not started, or started without the dashboard)."""


class KernelRefused(Exception):
    """The kernel answered with an error; ``detail`` is its message."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class KernelClient:
    def __init__(self, data_dir: str | Path, timeout: float = 10.0) -> None:
        self.data_dir = Path(data_dir)
        self.timeout = timeout

    def _target(self) -> tuple[str, str]:
        url = read_url(self.data_dir)
        token = read_admin_token(self.data_dir)
        if url is None or token is None:
            raise NoKernel(f"no running kernel with data_dir {self.data_dir} "
                           "(start it with `hrkernel run hr.toml`; it needs [dashboard] enabled)")
        return url, token

    def post(self, path: str, body: dict[str, Any]) -> Any:
        url, token = self._target()
        try:
            response = httpx.post(url + path, json=body, timeout=self.timeout,
                                  headers={"Authorization": f"Bearer {token}"})
        except httpx.ConnectError:
            raise NoKernel(f"the kernel of data_dir {self.data_dir} does not answer at {url} "
                           "(not running?)") from None
        except httpx.HTTPError as exc:
            raise NoKernel(f"the kernel at {url} did not answer: {type(exc).__name__}") from None
        try:
            data = response.json()
        except ValueError:
            data = {"detail": response.text[:300]}
        if response.status_code >= 400:
            raise KernelRefused(response.status_code, str(data.get("detail") or data.get("message") or data))
        return data.get("result", data)

    def get(self, path: str) -> Any:
        url, token = self._target()
        try:
            response = httpx.get(url + path, timeout=self.timeout, headers={"Authorization": f"Bearer {token}"})
        except httpx.HTTPError:
            raise NoKernel(f"the kernel of data_dir {self.data_dir} does not answer at {url} (not running?)") from None
        if response.status_code >= 400:
            raise KernelRefused(response.status_code, response.text[:300])
        return response.json()
