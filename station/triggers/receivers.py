"""Hooks into the run engine: a finished run fans out to the matching outbound webhooks."""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)


def on_run_finished(sender: Any = None, *, org_id: str, run_id: str, **_: Any) -> None:
    """Create one delivery per matching webhook and queue its sending. Never raises into the
    run engine: a failure here is logged, and the run's outcome stands."""
    from station.triggers import deliveries

    try:
        deliveries.enqueue_for_run(org_id=org_id, run_id=run_id)
    except Exception:  # the run engine must not fail because of a webhook
        logger.exception("outbound webhooks for run %s could not be queued", run_id)


def on_schedule_deleted(sender: Any, instance: Any, **_: Any) -> None:
    """Drop the beat entry with its schedule, also when an agent, environment or org deletion
    cascades to it (same transaction)."""
    from station.triggers.services import drop_periodic_task

    drop_periodic_task(instance.pk)


def connect() -> None:
    from django.db.models.signals import post_delete

    from station.runs.signals import run_finished
    from station.triggers.models import Schedule

    run_finished.connect(on_run_finished, dispatch_uid="station.triggers.run_finished")
    post_delete.connect(on_schedule_deleted, sender=Schedule,
                        dispatch_uid="station.triggers.schedule_deleted")
