"""Fingerprints, labels, matchers, silences and inhibition (internal)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hrkernel.alerts.config import InhibitRule, Matcher
from hrkernel.alerts.types import Alert, AlertLevel


def fingerprint(source: str, title: str, context: Mapping[str, Any], keys: Iterable[str]) -> str:
    """Identity of an alert: source + title + the chosen context keys (sorted, missing = empty)."""
    parts = [str(source), title] + [f"{k}={context.get(k, '')}" for k in sorted(set(keys))]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


def new_id() -> str:
    return uuid.uuid4().hex[:12]


@dataclass
class OpenAlert:
    """The manager's mutable record of one alert instance."""

    id: str
    fingerprint: str
    source: str
    level: AlertLevel
    title: str
    message: str
    context: dict[str, Any]
    first_seen: float
    last_seen: float
    count: int = 1
    status: str = "firing"
    """firing | resolved | expired (replaced by a new occurrence after the dedup window)"""
    resolved_at: float | None = None
    suppressed: str | None = None
    ack_by: str | None = None

    def labels(self) -> dict[str, str]:
        out = {k: str(v) for k, v in self.context.items()}
        out.update(source=str(self.source), level=self.level.value, title=self.title)
        return out

    def snapshot(self) -> Alert:
        return Alert(
            id=self.id,
            fingerprint=self.fingerprint,
            source=str(self.source),
            level=self.level,
            title=self.title,
            message=self.message,
            context=dict(self.context),
            count=self.count,
            first_seen=self.first_seen,
            last_seen=self.last_seen,
            status="resolved" if self.status == "resolved" else "firing",
            resolved_at=self.resolved_at,
            acknowledged_by=self.ack_by,
        )

    def row(self) -> dict[str, Any]:
        return {
            "id": self.id, "fingerprint": self.fingerprint, "source": str(self.source),
            "level": self.level.value, "title": self.title, "message": self.message,
            "context": self.context, "count": self.count, "first_seen": self.first_seen,
            "last_seen": self.last_seen, "status": self.status, "suppressed": self.suppressed,
            "resolved_at": self.resolved_at,
        }


def matches(matcher: Matcher, labels: Mapping[str, str]) -> bool:
    """Every label in ``matcher`` equals (or is one of) the alert's; an empty matcher matches all."""
    for key, want in matcher.items():
        have = labels.get(key)
        if have is None:
            return False
        if isinstance(want, list):
            if have not in want:
                return False
        elif have != want:
            return False
    return True


def parse_until(value: str | float | datetime) -> float:
    """Unix time from a float, a datetime or an ISO 8601 string (UTC when it has no offset)."""
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"expected an ISO 8601 time such as 2026-01-31T18:00:00Z, found {value!r}") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


@dataclass
class Silence:
    id: str
    matchers: Matcher
    until: float
    who: str
    why: str
    created: float = 0.0

    def active(self, now: float) -> bool:
        return now < self.until


@dataclass
class Suppressor:
    """Decides whether a firing alert is silenced or inhibited right now."""

    silences: list[Silence] = field(default_factory=list)
    rules: list[InhibitRule] = field(default_factory=list)

    def reason(self, alert: OpenAlert, firing: Iterable[OpenAlert], now: float) -> str | None:
        """Why ``alert`` is muted right now (None: it is not)."""
        return self.reasons([alert], firing, now)[alert.id]

    def reasons(self, alerts: list[OpenAlert], firing: Iterable[OpenAlert], now: float) -> dict[str, str | None]:
        """:meth:`reason` for many alerts at once: each rule's inhibiting alerts are found once,
        so a storm of alerts costs alerts × inhibitors, not alerts × alerts."""
        silences = [s for s in self.silences if s.active(now)]
        firing_labels = [(a, a.labels()) for a in firing if a.status == "firing"]
        inhibitors = [[(a, lab) for a, lab in firing_labels if matches(rule.source, lab)] for rule in self.rules]
        out: dict[str, str | None] = {}
        for alert in alerts:
            out[alert.id] = self._reason(alert, alert.labels(), silences, inhibitors)
        return out

    def _reason(
        self, alert: OpenAlert, labels: dict[str, str], silences: list[Silence],
        inhibitors: list[list[tuple[OpenAlert, dict[str, str]]]],
    ) -> str | None:
        for silence in silences:
            if matches(silence.matchers, labels):
                return f"silenced by {silence.id} ({silence.who}: {silence.why})"
        for rule, sources in zip(self.rules, inhibitors, strict=True):
            if not sources or not matches(rule.target, labels):
                continue
            for other, other_labels in sources:
                if other is alert:
                    continue
                if all(other_labels.get(k) == labels.get(k) for k in rule.equal):
                    return f"inhibited by {other.id} ({other.source}: {other.title})"
        return None

    def prune(self, now: float) -> None:
        self.silences = [s for s in self.silences if s.active(now)]
