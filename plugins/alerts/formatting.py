"""Per-channel message formats: Telegram MarkdownV2 and HTML, short SMS text."""

from __future__ import annotations

import html
import re

from hrkernel.alerts.types import Alert, Notification, render_text

__all__ = ["markdown_v2", "telegram_html", "short_text", "render_text"]

_MD_SPECIAL = re.compile(r"([_*\[\]()~`>#+\-=|{}.!\\])")
_ICON = {"info": "ℹ️", "warning": "⚠️", "error": "❗", "critical": "🚨"}


def md_escape(text: str) -> str:
    """Escape text for Telegram MarkdownV2 (every special character outside entities)."""
    return _MD_SPECIAL.sub(r"\\\1", str(text))


def _md_url(url: str) -> str:
    # Inside (...) of an inline link only ')' and '\' must be escaped.
    return url.replace("\\", "\\\\").replace(")", "\\)")


def _when(ts: float | None) -> str:
    import time

    return "-" if ts is None else time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


def _head(notification: Notification) -> str:
    return {
        "resolved": "RESOLVED",
        "repeat": "STILL FIRING",
        "digest": f"{len(notification.alerts)} alerts",
        "firing": "FIRING",
    }[notification.kind]


def _state(alert: Alert) -> str:
    return "RESOLVED" if alert.status == "resolved" else alert.level.value.upper()


def markdown_v2(notification: Notification) -> str:
    lines = [f"*{md_escape(_head(notification))}*"]
    for a in notification.alerts:
        icon = "✅" if a.status == "resolved" else _ICON.get(a.level.value, "")
        lines += [
            "",
            f"{icon} *{md_escape(_state(a))}* \\| {md_escape(a.source)}",
            f"*{md_escape(a.title)}*",
        ]
        if a.message:
            lines.append(md_escape(a.message))
        lines.append(md_escape(f"count: {a.count}, first seen: {_when(a.first_seen)}, last seen: {_when(a.last_seen)}"))
        if a.context:
            lines.append(md_escape(", ".join(f"{k}={v}" for k, v in sorted(a.context.items()))))
    if notification.dashboard_url:
        lines += ["", f"[dashboard]({_md_url(notification.dashboard_url)})"]
    return "\n".join(lines)


def telegram_html(notification: Notification) -> str:
    e = html.escape
    lines = [f"<b>{e(_head(notification))}</b>"]
    for a in notification.alerts:
        lines += ["", f"<b>{e(_state(a))}</b> | {e(a.source)}", f"<b>{e(a.title)}</b>"]
        if a.message:
            lines.append(e(a.message))
        lines.append(e(f"count: {a.count}, first seen: {_when(a.first_seen)}, last seen: {_when(a.last_seen)}"))
        if a.context:
            lines.append(e(", ".join(f"{k}={v}" for k, v in sorted(a.context.items()))))
    if notification.dashboard_url:
        lines += ["", f'<a href="{e(notification.dashboard_url, quote=True)}">dashboard</a>']
    return "\n".join(lines)


def short_text(notification: Notification, limit: int) -> str:
    """One compact text for SMS: every alert on one line, then the dashboard link."""
    parts = [notification.subject()]
    for a in notification.alerts:
        parts.append(
            f"{_state(a)} {a.source}: {a.title} - {a.message} (x{a.count}, "
            f"first {_when(a.first_seen)}, last {_when(a.last_seen)})"
        )
    if notification.dashboard_url:
        parts.append(notification.dashboard_url)
    text = "\n".join(parts)
    return text if len(text) <= limit else text[: limit - 1] + "…"
