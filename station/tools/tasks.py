"""Celery tasks for MCP servers: discovery and health checks (STYLE.md §7).

Tasks take ids, enter the org scope through OrgTask, and are idempotent: discovering twice
records the same tools (the second time changes nothing), a health check only refreshes
telemetry. The MCP I/O runs outside any transaction; each write is a short one.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from station.celery import app
from station.tasks import OrgTask
from station.tools.models import McpServer
from tenants.authz import Principal, authorize


def _server(server_id: str) -> McpServer | None:
    with transaction.atomic():
        return McpServer.objects.select_related("environment").filter(pk=server_id).first()


def _result(outcome: Any) -> dict[str, Any]:
    return {"ok": outcome.ok, "error": outcome.error, "latency_ms": outcome.latency_ms,
            "tools": [tool.name for tool in outcome.tools], "summary": outcome.summary}


@app.task(bind=True, base=OrgTask, name="station.tools.discover")
def discover_server(self: OrgTask, *, org_id: str, server_id: str,
                    requested_by: str = "") -> dict[str, Any]:
    """List the server's tools and pin them; a failure is recorded on the server."""
    from station.tools import discovery

    server = _server(server_id)
    if server is None:  # deleted since the request: nothing to do
        return {"ok": False, "error": "no such server", "skipped": True}
    actor = Principal.system(f"discovery requested by {requested_by}" if requested_by
                             else "scheduled discovery")
    outcome = discovery.discover(server, actor=actor,
                                 purpose=f"discovery of MCP server {server.name}")
    return _result(outcome)


@app.task(bind=True, base=OrgTask, name="station.tools.check_health")
def check_server_health(self: OrgTask, *, org_id: str, server_id: str,
                        requested_by: str = "") -> dict[str, Any]:
    """Connect and list tools, recording latency or the error. Disabled servers are left
    alone."""
    from station.tools import discovery

    server = _server(server_id)
    if server is None:  # deleted with its environment or org: its beat entry goes too
        from station.tools import health_schedule

        with transaction.atomic():
            health_schedule.drop(server_id)
        return {"ok": False, "error": "no such server", "skipped": True}
    if not server.enabled:
        return {"ok": False, "error": "disabled", "skipped": True}
    actor = Principal.system(f"health check requested by {requested_by}" if requested_by
                             else "health check")
    return _result(discovery.check_health(server, actor=actor))


# --- entry points for the API and the console ---------------------------------------------------


def request_discovery(*, actor: Principal, server: McpServer) -> None:
    """Queue a discovery of `server` (sent when the current transaction commits)."""
    authorize(actor, "tools.manage", server.organization_id, server.environment)
    kwargs = {"org_id": str(server.organization_id), "server_id": str(server.pk),
              "requested_by": actor.label}
    transaction.on_commit(lambda: discover_server.delay(**kwargs))


def request_health_check(*, actor: Principal, server: McpServer) -> None:
    """Queue a health check of `server` (sent when the current transaction commits)."""
    authorize(actor, "tools.manage", server.organization_id, server.environment)
    kwargs = {"org_id": str(server.organization_id), "server_id": str(server.pk),
              "requested_by": actor.label}
    transaction.on_commit(lambda: check_server_health.delay(**kwargs))
