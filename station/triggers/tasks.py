"""Celery tasks for triggers (STYLE.md §7): ids in, org scope from `org_id`, idempotent."""

from __future__ import annotations

from typing import Any

from station.celery import app
from station.tasks import OrgTask


@app.task(bind=True, base=OrgTask, name="station.triggers.fire_schedule")
def fire_schedule(self: OrgTask, *, org_id: str, schedule_id: str,
                  fire_time: str | None = None) -> dict[str, Any]:
    """Sent by beat (StationScheduler adds `fire_time`): start the schedule's run once per
    fire time."""
    from station.triggers import firing

    return firing.fire(schedule_id=schedule_id, fire_time=firing.parse_fire_time(fire_time))


@app.task(bind=True, base=OrgTask, name="station.triggers.deliver_webhook")
def deliver_webhook(self: OrgTask, *, org_id: str, delivery_id: str) -> dict[str, Any]:
    """One attempt; a failure queues the next one after its backoff (the delivery row, not
    the message, decides whether an attempt is due, so duplicates are harmless)."""
    from station.triggers import deliveries

    retry_in = deliveries.attempt(delivery_id)
    if retry_in is not None:
        deliver_webhook.apply_async(kwargs={"org_id": org_id, "delivery_id": delivery_id},
                                    countdown=retry_in.total_seconds())
    return {"retry_in": retry_in.total_seconds() if retry_in is not None else None}
