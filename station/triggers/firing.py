"""What a beat tick does for one schedule: start its run exactly once per fire time."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from django.db import transaction
from django.utils import timezone

from station.core.errors import StationError
from station.triggers import cron
from station.triggers.models import Schedule
from tenants.authz import Principal

logger = logging.getLogger(__name__)


def floor_minute(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


def idempotency_key(schedule_id: object, fire_time: datetime) -> str:
    """Same schedule and fire time → same key → one run, however often the tick arrives
    (a redelivered message, two beats, a retried task)."""
    return f"schedule:{schedule_id}:{floor_minute(fire_time):%Y-%m-%dT%H:%MZ}"


def parse_fire_time(value: str | None) -> datetime:
    if value:
        try:
            parsed = datetime.fromisoformat(value)
            if parsed.tzinfo is not None:
                return floor_minute(parsed)
        except ValueError:
            logger.warning("ignoring malformed fire_time %r", value)
    return floor_minute(timezone.now())


def fire(*, schedule_id: str, fire_time: datetime) -> dict[str, object]:
    """Start the schedule's run for `fire_time` (inside the org scope set by the task)."""
    from station.runs.services import start_run
    from station.triggers.services import drop_periodic_task

    with transaction.atomic():
        schedule = (Schedule.objects.select_for_update(of=("self",))
                    .select_related("agent", "environment")
                    .filter(pk=schedule_id).first())
        if schedule is None:
            # Deleted (or its org is gone): the beat entry is an orphan; remove it.
            drop_periodic_task(schedule_id)
            return {"skipped": "no such schedule"}
        if not schedule.enabled:
            return {"skipped": "disabled"}
        actor = Principal.system(f"schedule {schedule.pk}")
        key = idempotency_key(schedule.pk, fire_time)
        try:
            with transaction.atomic():
                run, created = start_run(actor=actor, agent=schedule.agent,
                                         input=schedule.input, trigger="schedule",
                                         trigger_ref=str(schedule.pk), idempotency_key=key)
        except StationError as exc:
            # The agent has no published version, the input no longer fits its schema, …:
            # recorded on the schedule for its owners to see; beat tries again next time.
            schedule.last_error = exc.detail[:2000]
            schedule.next_run_at = cron.next_fire(schedule.cron, schedule.timezone,
                                                  max(fire_time, timezone.now()))
            schedule.save(update_fields=["last_error", "next_run_at"])
            logger.warning("schedule %s could not start a run: %s", schedule.pk, exc.detail)
            return {"error": exc.detail}
        if created:
            schedule.last_run_at = fire_time
            schedule.last_run_id = run.pk
            schedule.last_error = ""
            schedule.next_run_at = cron.next_fire(schedule.cron, schedule.timezone,
                                                  max(fire_time, timezone.now()))
            schedule.save(update_fields=["last_run_at", "last_run_id", "last_error",
                                         "next_run_at"])
        return {"run_id": str(run.pk), "created": created}
