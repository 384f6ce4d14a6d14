"""Filters for the run pages: durations, JSON, status badges."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django import template

register = template.Library()

STATUS_BADGES = {
    "queued": "", "running": "badge-info", "waiting_approval": "badge-warning",
    "succeeded": "badge-success", "failed": "badge-danger", "cancelled": "",
    "timed_out": "badge-danger",
}


@register.filter
def seconds(value: float | int | None) -> str:
    """A duration for people: 850 ms, 4.2 s, 3 min 05 s, 1 h 02 min."""
    if value is None:
        return "—"
    value = float(value)
    if value < 1:
        return f"{round(value * 1000)} ms"
    if value < 60:
        return f"{value:.1f} s"
    minutes, secs = divmod(round(value), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


@register.filter
def milliseconds(value: int | None) -> str:
    return seconds(None if value is None else value / 1000)


@register.filter
def between(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return "—"
    return seconds(max((end - start).total_seconds(), 0))


@register.filter
def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


@register.filter
def status_badge(status: str) -> str:
    return STATUS_BADGES.get(status, "")
