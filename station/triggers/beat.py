"""Beat's scheduler: django-celery-beat's DatabaseScheduler, plus the fire time.

Beat runs with no org scope, as the app role, and every tenant table has FORCE row-level
security: it reads only django-celery-beat's own tables, where a Station schedule is a
PeriodicTask holding a crontab and `{org_id, schedule_id}`. The one addition here: the
message for a schedule carries the minute beat fired it for, so every delivery of that
message (redelivery after a worker crash, a duplicate tick) derives the same idempotency key.
"""

from __future__ import annotations

import copy
from typing import Any

from django.utils import timezone
from django_celery_beat.schedulers import DatabaseScheduler

from station.triggers.firing import floor_minute
from station.triggers.services import FIRE_TASK


class StationScheduler(DatabaseScheduler):
    def apply_async(self, entry: Any, producer: Any = None, advance: bool = True,
                    **kwargs: Any) -> Any:
        if entry.task == FIRE_TASK:
            entry = copy.copy(entry)
            entry.kwargs = {**(entry.kwargs or {}),
                            "fire_time": floor_minute(timezone.now()).isoformat()}
        return super().apply_async(entry, producer, advance, **kwargs)
