"""Typed exchange errors the kernel can act on (public API).

Every error carries the exchange's name, its own error ``code`` and ``message`` when it sent
any, the HTTP ``status`` when there was one, and ``raw``: the response body, truncated, for the
log. Which errors may be retried, and which count against a circuit breaker, is a property of
the type (:attr:`ExchangeError.retryable`, :attr:`ExchangeError.counts_as_failure`):

- a refusal about *this* request (invalid order, insufficient balance, not found, duplicate id,
  authentication) says nothing about the exchange's health, so it never trips a breaker;
- unavailability and timeouts do;
- :class:`UnknownOutcomeError` means the request may or may not have been executed: never resend
  it blindly, find out (``find_order_by_client_id``).
"""

from __future__ import annotations

from hrkernel.errors import HrkernelError

__all__ = [
    "AuthenticationError",
    "ContractViolationError",
    "DuplicateClientOrderIdError",
    "DuplicateOrderError",
    "ExchangeError",
    "ExchangeTimeoutError",
    "ExchangeUnavailableError",
    "InsufficientBalanceError",
    "InvalidOrderError",
    "MalformedResponseError",
    "OrderNotCancelableError",
    "OrderNotFoundError",
    "RateLimitedError",
    "UnknownOutcomeError",
]

RAW_LIMIT = 512
"""Characters of a response body kept on an error."""


def truncate_raw(raw: bytes | str | None, limit: int = RAW_LIMIT) -> str | None:
    if raw is None:
        return None
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return text if len(text) <= limit else text[:limit] + f"...[{len(text) - limit} more chars]"


class ExchangeError(HrkernelError):
    """Base of every exchange error."""

    retryable: bool = False
    """Whether sending the *same* read again may succeed (never applies to placements)."""
    counts_as_failure: bool = False
    """Whether a circuit breaker around the exchange should record it."""

    def __init__(
        self,
        message: str,
        *,
        exchange: str = "",
        code: str | None = None,
        exchange_message: str | None = None,
        status: int | None = None,
        raw: bytes | str | None = None,
        endpoint: str | None = None,
    ) -> None:
        self.exchange = exchange
        self.code = code
        self.exchange_message = exchange_message
        self.status = status
        self.raw = truncate_raw(raw)
        self.endpoint = endpoint
        parts = [message]
        if code:
            parts.append(f"code={code}")
        if exchange_message:
            parts.append(f"message={exchange_message!r}")
        if status is not None:
            parts.append(f"http={status}")
        where = f"{exchange} {endpoint}: " if exchange and endpoint else (f"{exchange}: " if exchange else "")
        super().__init__(where + " ".join(parts))


class AuthenticationError(ExchangeError):
    """The token is missing, wrong, expired or lacks the permission. Fix the config; do not retry."""


class InsufficientBalanceError(ExchangeError):
    """Not enough free balance for the order."""


class InvalidOrderError(ExchangeError):
    """The order was refused as invalid: precision, minimum size, price band, unknown market..."""


class DuplicateOrderError(InvalidOrderError):
    """The exchange ignored the placement as a repeat of an identical order placed moments ago
    (Nobitex: ``DuplicateOrder``, for 10 seconds). That order may be this one's own earlier
    placement: look it up by client order id before concluding anything."""


class DuplicateClientOrderIdError(InvalidOrderError):
    """An open order already carries this client order id: the earlier placement exists."""


class OrderNotFoundError(ExchangeError):
    """No such order (or, for lookups by client order id, no *open* one)."""


class OrderNotCancelableError(ExchangeError):
    """The order is already in a terminal state (e.g. filled) and cannot be cancelled."""

    def __init__(self, message: str, *, current_status: str | None = None, **kwargs: object) -> None:
        self.current_status = current_status
        super().__init__(message, **kwargs)  # type: ignore[arg-type]


class RateLimitedError(ExchangeError):
    """The exchange said to slow down; wait ``retry_after`` seconds before calling that endpoint."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, sent: bool = True, **kwargs: object) -> None:
        self.retry_after = retry_after
        self.sent = sent
        """``False`` when the adapter refused the call itself (its client-side limit) before
        anything left the process: a placement refused so certainly did not reach the exchange."""
        super().__init__(message, **kwargs)  # type: ignore[arg-type]


class ExchangeUnavailableError(ExchangeError):
    """5xx, connection refused or reset, maintenance: the exchange is not answering properly."""

    retryable = True
    counts_as_failure = True


class ExchangeTimeoutError(ExchangeUnavailableError):
    """No answer in time (for a read: safe to retry)."""


class MalformedResponseError(ExchangeUnavailableError):
    """The body could not be understood; ``raw`` keeps it (truncated)."""


class UnknownOutcomeError(ExchangeError):
    """A state-changing request may or may not have been executed (timeout or dropped
    connection after sending). Resolve it by client order id; never resend blindly."""

    counts_as_failure = True

    def __init__(self, message: str, *, client_order_id: str | None = None, **kwargs: object) -> None:
        self.client_order_id = client_order_id
        super().__init__(message, **kwargs)  # type: ignore[arg-type]


class ContractViolationError(ExchangeError):
    """The exchange *plugin* broke the contract: a method returned a value of the wrong type
    (``None`` for a list, a float for a Decimal) or raised something other than an
    ``ExchangeError``. A bug in the plugin, not an outage: the kernel's exchange wrapper raises
    it (with a critical alert naming the plugin) for reads; for a placement or cancel, whose
    effect is then unknown, it raises :class:`UnknownOutcomeError` instead."""
