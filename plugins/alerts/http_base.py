"""What the HTTP channels share: one client per channel, error classification, no secrets in reasons."""

from __future__ import annotations

from typing import Any

import httpx

from hrkernel.alerts.types import ChannelError


class HttpChannel:
    """Base for channels that POST to an HTTP API. Secrets listed in ``_secrets`` are removed
    from every failure reason (a Telegram token is part of the URL, so httpx errors carry it)."""

    name = "http"

    def __init__(self, timeout: float, secrets: list[str]) -> None:
        self._timeout = timeout
        self._secrets = [s for s in secrets if s]
        self._client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    @staticmethod
    def _retry_after(response: httpx.Response) -> float | None:
        """Seconds from a ``Retry-After`` header, or Telegram's ``parameters.retry_after``."""
        header = response.headers.get("retry-after", "")
        if header.strip().isdigit():
            return float(header)
        try:
            value = response.json().get("parameters", {}).get("retry_after")
        except (ValueError, AttributeError):
            return None
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None

    async def _post(self, url: str, **kwargs: Any) -> httpx.Response:
        if self._client is None:  # used without start(): still works, one client per call
            await self.start()
        assert self._client is not None
        try:
            response = await self._client.post(url, **kwargs)
        except httpx.HTTPError as exc:
            raise ChannelError(self.name, self._scrub(f"{type(exc).__name__}: {exc}")) from None
        if response.status_code >= 400:
            body = self._scrub(response.text[:200])
            # 429 and 5xx are worth retrying; other 4xx mean the request itself is wrong.
            retryable = response.status_code == 429 or response.status_code >= 500
            raise ChannelError(self.name, f"HTTP {response.status_code}: {body}", retryable=retryable,
                               retry_after=self._retry_after(response))
        return response
