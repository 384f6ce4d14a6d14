from __future__ import annotations

import json
from typing import Any

from django import template

from audit.registry import ACTIONS

register = template.Library()


def _plain(value: Any) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ", ".join(value)
    return json.dumps(value, ensure_ascii=False)


@register.filter
def change_value(value: Any) -> str:
    """An audit `changes` entry; `audit.change()` values read as “before → after”."""
    if isinstance(value, dict) and set(value) == {"from", "to"}:
        return f"{_plain(value['from'])} → {_plain(value['to'])}"
    return _plain(value)


@register.filter
def action_description(action: str) -> str:
    return ACTIONS.get(action, "")
