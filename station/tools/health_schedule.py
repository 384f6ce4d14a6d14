"""Periodic health checks of MCP servers, through beat.

Beat runs without an org and cannot read tenant tables (FORCE row-level security), so each
server owns one django-celery-beat PeriodicTask holding only `{org_id, server_id}` and an
interval; it is written in the same transaction as the server, so the two never disagree.
A tick for a server that no longer exists (deleted with its environment or org) removes its
entry (see tasks.check_server_health).
"""

from __future__ import annotations

import json
import uuid

from django.conf import settings

from station.tools.models import McpServer

HEALTH_TASK = "station.tools.check_health"


def task_name(server_id: uuid.UUID | str) -> str:
    return f"station.mcp-health:{server_id}"


def sync(server: McpServer) -> None:
    """Create or update the server's beat entry (disabled with the server; none at all when
    STATION_MCP_HEALTH_INTERVAL_SECONDS is 0)."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    every = int(settings.MCP_HEALTH_INTERVAL_SECONDS)
    if every <= 0:
        drop(server.pk)
        return
    interval, _ = IntervalSchedule.objects.get_or_create(every=every,
                                                         period=IntervalSchedule.SECONDS)
    task = PeriodicTask.objects.filter(name=task_name(server.pk)).first() or PeriodicTask(
        name=task_name(server.pk))
    task.task = HEALTH_TASK
    task.interval = interval
    task.crontab = task.solar = task.clocked = None
    task.kwargs = json.dumps({"org_id": str(server.organization_id),
                              "server_id": str(server.pk)})
    task.enabled = server.enabled
    task.description = "Station MCP server health check (tenant data stays in the org's tables)"
    task.save()


def drop(server_id: uuid.UUID | str) -> None:
    from django_celery_beat.models import PeriodicTask

    for task in PeriodicTask.objects.filter(name=task_name(server_id)):
        task.delete()  # one by one: the delete signal tells beat its schedule changed
