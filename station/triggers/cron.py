"""Cron expressions and IANA time zones: validation and the next fire time.

Parsing and field matching are Celery's own `crontab` (the one beat evaluates through
django-celery-beat), so what Station shows as the next run is what beat does. The next time is
found on the wall clock of the schedule's zone and only then given its UTC offset, so
"09:00 in Europe/Paris" stays 09:00 local on both sides of a DST change.
"""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from celery.schedules import crontab

from station.core.errors import InvalidInput

FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")


def split(expression: str) -> dict[str, str]:
    parts = str(expression or "").split()
    if len(parts) != 5:
        raise InvalidInput.field(
            "cron", f"Expected five fields (minute hour day-of-month month day-of-week), got "
                    f"{len(parts)}: {expression!r}.")
    return dict(zip(FIELDS, parts, strict=True))


def parse(expression: str) -> crontab:
    fields = split(expression)
    try:
        return crontab(**fields)
    except (ValueError, IndexError, TypeError) as exc:
        raise InvalidInput.field("cron", f"Not a valid cron expression: {exc}.") from exc


def zone(name: str) -> ZoneInfo:
    # zoneinfo also accepts file-system style paths; only real IANA names are allowed here.
    if not isinstance(name, str) or name not in _zone_names():
        raise InvalidInput.field("timezone", f"Unknown time zone {name!r}; use an IANA name "
                                             "such as Europe/Paris or UTC.")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:  # pragma: no cover - listed but broken
        raise InvalidInput.field("timezone", f"Unknown time zone {name!r}.") from exc


_NAMES: frozenset[str] | None = None


def _zone_names() -> frozenset[str]:
    global _NAMES
    if _NAMES is None:
        _NAMES = frozenset(available_timezones())
    return _NAMES


def next_fire(expression: str, tz_name: str, after: datetime) -> datetime:
    """The first fire time strictly after `after` (an aware datetime), as an aware datetime
    in the schedule's zone."""
    schedule = parse(expression)
    tz: tzinfo = zone(tz_name)
    cursor = after.astimezone(tz)
    for _ in range(4):
        last, delta, _now = schedule.remaining_delta(cursor, tz=tz)
        wall = last.replace(tzinfo=None) + delta  # wall-clock arithmetic, no offsets
        candidate = wall.replace(tzinfo=tz)
        if candidate > after:
            return candidate
        # Only in a repeated (fall-back) hour can the wall clock land before `after`.
        cursor = (candidate + timedelta(minutes=1)).astimezone(tz)
    raise InvalidInput.field("cron", "This expression never fires.")  # pragma: no cover


def describe(expression: str) -> str:
    """A human reading of the expression (cron-descriptor, a django-celery-beat dependency)."""
    try:
        from cron_descriptor import get_description

        return str(get_description(expression))
    except Exception:  # a description is a nicety, never an error
        return expression
