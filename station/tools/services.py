"""Writes for MCP servers and their tools (STYLE.md §1: authorize, write, audit)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlparse

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from audit import services as audit
from station.core.errors import Conflict, InvalidInput
from station.tools import health_schedule
from station.tools.hashing import ToolDefinition
from station.tools.models import McpServer, Tool
from station.vault.models import Secret, Variable, name_validator
from station.vault.services import REFERENCE
from tenants.authz import Principal, authorize
from tenants.models import Environment

_CONFIG_FIELDS = ("description", "transport", "command", "args", "env", "url", "headers",
                  "enabled", "reuse_sessions")


def _references(config: dict[str, Any]) -> set[tuple[str, str, str]]:
    """(kind, name, field) of every ${secret:…}/${var:…} reference in the settings."""
    texts: list[tuple[str, str]] = [
        ("command", config.get("command", "")), ("url", config.get("url", "")),
        *(("args", a) for a in config.get("args", [])),
        *(("env", v) for v in config.get("env", {}).values()),
        *(("headers", v) for v in config.get("headers", {}).values())]
    return {(m.group(1), m.group(2), where) for where, text in texts
            for m in REFERENCE.finditer(str(text))}


def _validate_config(environment: Environment, config: dict[str, Any]) -> dict[str, Any]:
    errors: dict[str, list[str]] = {}
    transport = config.get("transport")
    if transport not in (McpServer.STDIO, McpServer.HTTP):
        errors["transport"] = ["Choose 'stdio' or 'http'."]
    if transport == McpServer.STDIO and not str(config.get("command") or "").strip():
        errors["command"] = ["A stdio server needs the command that starts it."]
    if transport == McpServer.HTTP:
        parsed = urlparse(str(config.get("url") or ""))
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            errors["url"] = ["Give the server's http(s) URL, e.g. https://mcp.example.com/mcp."]
    args = config.get("args", [])
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        errors["args"] = ["A list of strings."]
    if not isinstance(config.get("reuse_sessions", False), bool):
        errors["reuse_sessions"] = ["True or false."]
    for field in ("env", "headers"):
        value = config.get(field, {})
        if not isinstance(value, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            errors[field] = ["An object of string names to string values."]
    if not errors:
        for kind, name, where in sorted(_references(config)):
            model = Secret if kind == "secret" else Variable
            if not model.objects.filter(environment=environment, name=name).exists():
                label = "secret" if kind == "secret" else "variable"
                errors.setdefault(where, []).append(
                    f"References {label} {name!r}, which does not exist in "
                    f"{environment.slug}.")
    if errors:
        first = next(iter(errors))
        raise InvalidInput(f"{first}: {errors[first][0]}", errors=errors)
    return config


@transaction.atomic
def create_mcp_server(*, actor: Principal, environment: Environment, name: str,
                      **config: Any) -> McpServer:
    authorize(actor, "tools.manage", environment.organization_id, environment)
    try:
        name_validator(name)
    except ValidationError as exc:
        raise InvalidInput.field("name", str(exc.messages[0])) from exc
    config = {field: config[field] for field in _CONFIG_FIELDS if field in config}
    _validate_config(environment, {"args": [], "env": {}, "headers": {}, **config})
    if McpServer.objects.filter(environment=environment, name=name).exists():
        raise Conflict(f"An MCP server named {name!r} exists in {environment.slug}.",
                       errors={"name": ["Taken in this environment."]})
    server = McpServer.objects.create(environment=environment, name=name, **config)
    health_schedule.sync(server)
    audit.record("mcp_server.created", actor=actor, target=server,
                 environment_id=environment.pk,
                 changes={"name": name, **{k: v for k, v in config.items()}})
    return server


@transaction.atomic
def update_mcp_server(*, actor: Principal, server: McpServer, **changes: Any) -> McpServer:
    authorize(actor, "tools.manage", server.organization_id, server.environment)
    changes = {k: v for k, v in changes.items() if k in _CONFIG_FIELDS}
    current = {field: getattr(server, field) for field in _CONFIG_FIELDS}
    _validate_config(server.environment, {**current, **changes})
    diff = {k: audit.change(current[k], v) for k, v in changes.items() if current[k] != v}
    if not diff:
        return server
    for field, value in changes.items():
        setattr(server, field, value)
    server.updated_at = timezone.now()
    server.save()
    if "enabled" in diff:
        health_schedule.sync(server)
    audit.record("mcp_server.updated", actor=actor, target=server,
                 environment_id=server.environment_id, changes=diff)
    return server


@transaction.atomic
def delete_mcp_server(*, actor: Principal, server: McpServer) -> None:
    authorize(actor, "tools.manage", server.organization_id, server.environment)
    audit.record("mcp_server.deleted", actor=actor, target=server,
                 environment_id=server.environment_id, changes={"name": server.name})
    health_schedule.drop(server.pk)
    server.delete()


@transaction.atomic
def record_discovery(*, actor: Principal, server: McpServer,
                     tools: Iterable[ToolDefinition], latency_ms: int | None = None) -> dict[str,
                                                                                         list[str]]:
    """Apply what a discovery found: new tools are approved on first sight (trust on first
    use, recorded); a tool whose content hash differs from the approved one is held as
    `changed`; tools the server no longer lists are marked `removed`, never deleted."""
    now = timezone.now()
    found = {tool.name: tool for tool in tools}
    # Lock the server row first: two discoveries of one server apply one after the other.
    McpServer.objects.select_for_update().filter(pk=server.pk).first()
    known = {tool.name: tool for tool in Tool.objects.select_for_update().filter(server=server)}
    summary: dict[str, list[str]] = {"added": [], "changed": [], "removed": [], "restored": []}
    for name, definition in sorted(found.items()):
        digest = definition.content_hash
        fields = {"description": definition.description,
                  "input_schema": definition.input_schema,
                  "output_schema": definition.output_schema,
                  "annotations": definition.annotations, "content_hash": digest,
                  "last_seen_at": now}
        tool = known.get(name)
        if tool is None:
            Tool.objects.create(server=server, name=name, approved_hash=digest,
                                approved_content=definition.canonical(), status=Tool.APPROVED,
                                approved_at=now, approved_by_label="first discovery",
                                first_seen_at=now, **fields)
            summary["added"].append(name)
            continue
        was = tool.status
        for key, value in fields.items():
            setattr(tool, key, value)
        tool.status = Tool.APPROVED if digest == tool.approved_hash else Tool.CHANGED
        tool.save()
        if tool.status == Tool.CHANGED and was != Tool.CHANGED:
            summary["changed"].append(name)
        elif was == Tool.REMOVED and tool.status == Tool.APPROVED:
            summary["restored"].append(name)
    for name, tool in known.items():
        if name not in found and tool.status != Tool.REMOVED:
            tool.status = Tool.REMOVED
            tool.save(update_fields=["status"])
            summary["removed"].append(name)
    server.last_discovered_at = now
    server.last_checked_at = now
    server.last_ok_at = now
    server.last_error = ""
    server.last_latency_ms = latency_ms
    server.save(update_fields=["last_discovered_at", "last_checked_at", "last_ok_at",
                               "last_error", "last_latency_ms"])
    audit.record("mcp_server.discovered", actor=actor, target=server,
                 environment_id=server.environment_id,
                 changes={k: v for k, v in summary.items() if v} | {"tools": len(found)})
    return summary


@transaction.atomic
def record_failure(*, server: McpServer, error: str, latency_ms: int | None = None) -> None:
    """A failed discovery or health check (telemetry on the server row; not audited)."""
    server.last_checked_at = timezone.now()
    server.last_error = error[:2000]
    server.last_latency_ms = latency_ms
    server.save(update_fields=["last_checked_at", "last_error", "last_latency_ms"])


@transaction.atomic
def record_health(*, server: McpServer, latency_ms: int | None) -> None:
    """A successful health check (telemetry on the server row; not audited)."""
    now = timezone.now()
    server.last_checked_at = now
    server.last_ok_at = now
    server.last_error = ""
    server.last_latency_ms = latency_ms
    server.save(update_fields=["last_checked_at", "last_ok_at", "last_error", "last_latency_ms"])


@transaction.atomic
def approve_tool(*, actor: Principal, tool: Tool) -> Tool:
    """Approve a tool's current definition (after reviewing what changed)."""
    authorize(actor, "tools.manage", tool.organization_id, tool.server.environment)
    if tool.status == Tool.REMOVED:
        raise Conflict("The server no longer lists this tool; there is nothing to approve.")
    before = tool.approved_hash
    tool.approved_hash = tool.content_hash
    tool.approved_content = {"name": tool.name, "description": tool.description,
                             "input_schema": tool.input_schema,
                             "output_schema": tool.output_schema,
                             "annotations": tool.annotations}
    tool.status = Tool.APPROVED
    tool.approved_at = timezone.now()
    tool.approved_by_label = actor.label
    tool.save()
    audit.record("tool.approved", actor=actor, target=tool,
                 environment_id=tool.server.environment_id,
                 changes={"server": tool.server.name, "hash": audit.change(before,
                                                                           tool.content_hash)})
    return tool
