"""Errors of the message bus."""

from __future__ import annotations

from hrkernel.errors import HrkernelError


class BusError(HrkernelError):
    """Base of bus errors."""


class BusUnavailable(BusError):
    """The broker cannot take the event now and the topic's policy says fail (or its buffer is full)."""

    def __init__(self, backend: str, topic: str, reason: str) -> None:
        super().__init__(
            f"{backend} bus cannot publish to topic {topic!r}: {reason} "
            "(the event was NOT published; check the broker or set [bus.topics] policy)"
        )
        self.backend = backend
        self.topic = topic
        self.reason = reason


class BusClosed(BusError):
    """The bus was stopped; no more publishing or consuming."""
