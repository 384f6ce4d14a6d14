"""Cron expressions and time zones: validation that names the field, and fire times that
keep the local wall clock across DST changes."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from station.core.errors import InvalidInput
from station.triggers import cron

PARIS = ZoneInfo("Europe/Paris")


def test_weekday_nine_am_in_paris_stays_nine_am_across_the_spring_dst_change() -> None:
    # Friday 27 March 2026 09:00 CET (UTC+1); clocks go forward on Sunday 29 March.
    after = datetime(2026, 3, 27, 9, 0, tzinfo=PARIS)
    nxt = cron.next_fire("0 9 * * 1-5", "Europe/Paris", after)
    assert nxt.astimezone(PARIS).replace(tzinfo=None) == datetime(2026, 3, 30, 9, 0)
    assert nxt.astimezone(UTC) == datetime(2026, 3, 30, 7, 0, tzinfo=UTC)  # now UTC+2
    # The Friday itself, before the change: 08:00 UTC.
    friday = cron.next_fire("0 9 * * 1-5", "Europe/Paris", after.replace(hour=8))
    assert friday.astimezone(UTC) == datetime(2026, 3, 27, 8, 0, tzinfo=UTC)


def test_weekday_nine_am_in_paris_across_the_autumn_dst_change() -> None:
    after = datetime(2026, 10, 23, 9, 30, tzinfo=PARIS)  # Friday, UTC+2
    nxt = cron.next_fire("0 9 * * 1-5", "Europe/Paris", after)
    assert nxt.astimezone(UTC) == datetime(2026, 10, 26, 8, 0, tzinfo=UTC)  # Monday, UTC+1


def test_saturday_skips_to_monday() -> None:
    nxt = cron.next_fire("0 9 * * 1-5", "Europe/Paris", datetime(2026, 3, 28, 12, tzinfo=PARIS))
    assert nxt.astimezone(PARIS).replace(tzinfo=None) == datetime(2026, 3, 30, 9, 0)


@pytest.mark.parametrize("expression, reason", [
    ("0 9 * *", "five fields"),
    ("0 9 * * * *", "five fields"),
    ("61 9 * * *", "Not a valid cron expression"),
    ("0 25 * * *", "Not a valid cron expression"),
    ("0 9 * * mon-fry", "Not a valid cron expression"),
    ("", "five fields"),
])
def test_bad_cron_is_invalid_input_naming_the_field(expression: str, reason: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        cron.parse(expression)
    assert list(caught.value.errors) == ["cron"]
    assert reason in caught.value.errors["cron"][0]


@pytest.mark.parametrize("name", ["Europe/Pariss", "Mars/Olympus", "", "../../etc/passwd",
                                  "/usr/share/zoneinfo/UTC"])
def test_unknown_timezone_is_invalid_input_naming_the_field(name: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        cron.zone(name)
    assert list(caught.value.errors) == ["timezone"]
    assert "Unknown time zone" in caught.value.errors["timezone"][0]
