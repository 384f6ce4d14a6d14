"""MCP servers are health-checked on a schedule: one beat entry per server, kept in step with
the server in the same transaction, readable by beat without an org, and run by the real
health-check task."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from django.db import transaction
from django_celery_beat.models import PeriodicTask

from station.tools import health_schedule, services
from station.tools.models import McpServer
from station.tools.tasks import check_server_health
from tenants.context import no_org_scope
from tenants.models import Environment
from tests.fixtures import SYSTEM, OrgFixture

TIME_SERVER = str(Path(sys.executable).parent / "mcp-server-time")


def _entry(server: McpServer) -> PeriodicTask | None:
    return PeriodicTask.objects.filter(name=health_schedule.task_name(server.pk)).first()


def _server(org: OrgFixture, **config: Any) -> McpServer:
    with org.scope():
        env = Environment.objects.get(slug="dev")
        return services.create_mcp_server(actor=SYSTEM, environment=env, name="clock",
                                          transport="stdio", command=TIME_SERVER, **config)


@pytest.mark.django_db
def test_each_server_gets_a_beat_entry_that_follows_it(org_a: OrgFixture,
                                                       settings: Any) -> None:
    server = _server(org_a)
    entry = _entry(server)
    assert entry is not None and entry.enabled
    assert entry.task == "station.tools.check_health"
    assert json.loads(entry.kwargs) == {"org_id": str(org_a.org.pk),
                                        "server_id": str(server.pk)}
    assert entry.interval is not None
    assert entry.interval.every == settings.MCP_HEALTH_INTERVAL_SECONDS
    with org_a.scope():
        services.update_mcp_server(actor=SYSTEM, server=server, enabled=False)
    entry = _entry(server)
    assert entry is not None and not entry.enabled
    with org_a.scope():
        services.delete_mcp_server(actor=SYSTEM, server=server)
    assert _entry(server) is None


@pytest.mark.django_db
def test_a_failed_create_leaves_no_beat_entry(org_a: OrgFixture) -> None:
    with pytest.raises(RuntimeError), org_a.scope():
        server = services.create_mcp_server(
            actor=SYSTEM, environment=Environment.objects.get(slug="dev"), name="clock",
            transport="stdio", command=TIME_SERVER)
        raise RuntimeError("the request failed afterwards")
    assert not PeriodicTask.objects.filter(name=health_schedule.task_name(server.pk)).exists()


@pytest.mark.django_db
def test_beat_reads_the_entries_without_an_org_and_sees_no_tenant_rows(
        org_a: OrgFixture) -> None:
    _server(org_a)
    with no_org_scope(), transaction.atomic():
        assert PeriodicTask.objects.filter(task="station.tools.check_health").count() == 1
        assert McpServer.all_orgs.count() == 0  # FORCE RLS: no org, no rows


@pytest.mark.django_db
def test_interval_zero_means_no_periodic_checks(org_a: OrgFixture, settings: Any) -> None:
    settings.MCP_HEALTH_INTERVAL_SECONDS = 0
    assert _entry(_server(org_a)) is None


def test_the_scheduled_task_checks_a_real_server_and_drops_orphans(
        committed_db: None, make_org: Any, settings: Any) -> None:
    settings.VAULT_REVEAL_ALLOWED = True
    org = make_org("healthco")
    server = _server(org)
    entry = _entry(server)
    assert entry is not None
    result = check_server_health.apply(kwargs=json.loads(entry.kwargs)).get()
    assert result["ok"], result
    with org.scope():
        checked = McpServer.objects.get(pk=server.pk)
        assert checked.last_ok_at is not None and checked.last_latency_ms is not None
        # Deleted behind the services' back (as a cascade from its environment does).
        McpServer.objects.filter(pk=server.pk).delete()
    result = check_server_health.apply(kwargs=json.loads(entry.kwargs)).get()
    assert result["skipped"] and _entry(server) is None
