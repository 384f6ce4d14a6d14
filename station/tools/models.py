"""MCP servers (per environment) and the tools discovered on them, pinned by content hash."""

from __future__ import annotations

import uuid
from typing import ClassVar

from django.db import models
from django.utils import timezone

from station.vault.models import name_validator
from tenants.models import Environment, TenantModel


class McpServer(TenantModel):
    """An MCP server: `stdio` (command, args, env) or streamable `http` (url, headers).

    Values in `env` and `headers` (and `url`, `args`) may reference `${secret:NAME}` and
    `${var:NAME}`; they are resolved only in the worker, never stored resolved.
    """

    STDIO, HTTP = "stdio", "http"
    TRANSPORTS = ((STDIO, "stdio"), (HTTP, "Streamable HTTP"))

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=64, validators=[name_validator])
    description = models.CharField(max_length=500, blank=True)
    transport = models.CharField(max_length=8, choices=TRANSPORTS)
    command = models.CharField(max_length=500, blank=True)
    args = models.JSONField(default=list, blank=True)
    env = models.JSONField(default=dict, blank=True)
    url = models.CharField(max_length=2000, blank=True)
    headers = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)
    # Off by default: a warm session carries the server's in-memory state (a memory graph,
    # browser cookies, a checkout) from one run to the next, so reuse is an explicit choice
    # by someone who knows the server keeps none (docs/runs.md, "Warm MCP sessions").
    reuse_sessions = models.BooleanField(
        default=False,
        help_text="Only for stateless servers: a warm session may serve several runs of "
                  "this server.")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    # Discovery and health.
    last_discovered_at = models.DateTimeField(null=True, blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    last_ok_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_latency_ms = models.PositiveIntegerField(null=True, blank=True)

    class Meta(TenantModel.Meta):
        constraints: ClassVar[list[models.BaseConstraint]] = [
            *TenantModel.Meta.constraints,
            models.UniqueConstraint(fields=["organization", "environment", "name"],
                                    name="uniq_mcp_server_name_per_env"),
        ]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Tool(TenantModel):
    """A tool as last discovered, and the content hash an admin approved.

    A tool is callable only while its discovered content hash equals the approved one: when a
    server changes a tool's description or schemas, it is held as `changed` until someone
    with `tools.manage` approves it again (protection against tool poisoning).
    """

    APPROVED, CHANGED, REMOVED = "approved", "changed", "removed"
    STATUSES = ((APPROVED, "Approved"), (CHANGED, "Changed — needs review"),
                (REMOVED, "Removed from the server"))

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    server = models.ForeignKey(McpServer, on_delete=models.CASCADE, related_name="tools")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    input_schema = models.JSONField(default=dict)
    output_schema = models.JSONField(null=True, blank=True)
    annotations = models.JSONField(null=True, blank=True)
    content_hash = models.CharField(max_length=64)
    approved_hash = models.CharField(max_length=64, blank=True)
    approved_content = models.JSONField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=STATUSES, default=APPROVED)
    approved_at = models.DateTimeField(null=True, blank=True)
    approved_by_label = models.CharField(max_length=255, blank=True)
    first_seen_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantModel.Meta):
        constraints: ClassVar[list[models.BaseConstraint]] = [
            *TenantModel.Meta.constraints,
            models.UniqueConstraint(fields=["server", "name"], name="uniq_tool_name_per_server"),
        ]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def callable(self) -> bool:
        return self.status == self.APPROVED and self.content_hash == self.approved_hash


class ToolPolicy(TenantModel):
    """An environment-wide rule for tool calls, on top of each agent's allowlist.

    `tool` is `server/tool` or `server/*`. `deny` makes the tool uncallable by any agent in
    the environment; `require_approval` holds each call until a member with `runs.approve`
    approves or rejects it.
    """

    DENY, REQUIRE_APPROVAL = "deny", "require_approval"
    EFFECTS = ((DENY, "Deny"), (REQUIRE_APPROVAL, "Require human approval"))

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="+")
    tool = models.CharField(max_length=300)
    effect = models.CharField(max_length=16, choices=EFFECTS)
    note = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantModel.Meta):
        constraints: ClassVar[list[models.BaseConstraint]] = [
            *TenantModel.Meta.constraints,
            models.UniqueConstraint(fields=["organization", "environment", "tool"],
                                    name="uniq_tool_policy_per_env"),
        ]
        ordering = ["tool"]

    def __str__(self) -> str:
        return f"{self.effect} {self.tool}"

    def matches(self, server: str, tool: str) -> bool:
        return self.tool in (f"{server}/{tool}", f"{server}/*")
