"""The Celery application. Tasks enter their org's scope through `station.tasks.OrgTask`."""

import os
from typing import Any

from celery import Celery, Task
from celery.signals import task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "station.settings")

app = Celery("station")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def close_old_db_connections(task: Task | None = None, **_: Any) -> None:
    """Database connections across tasks are handled as across web requests: one past
    CONN_MAX_AGE, broken, or left inside a transaction is closed; the others are reused
    (health-checked on first use). Celery's Django fixup, left alone, closes every connection
    around every task (CELERY_DB_REUSE_MAX in settings stops that), which made each run pay
    for a new PostgreSQL session. Eager tasks run inside the caller's transaction: untouched."""
    if task is not None and getattr(task.request, "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()
