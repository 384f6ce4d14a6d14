"""Console pages for MCP servers and their pinned tools: list per environment with health,
add/edit/delete, discover tools, and review a changed tool before approving it again.

Discovery goes through `request_discovery` below: the tools app's task
(`station.tools.tasks.request_discovery`, enqueued on commit) when it exists, else a
synchronous `station.tools.discovery.discover` (which needs VAULT_REVEAL_ALLOWED when the
server references secrets: a worker-only setting).
"""

from __future__ import annotations

import difflib
import importlib
import json
import re
import uuid
from typing import Any

from django import forms
from django.contrib import messages
from django.db.models import Count, Q, QuerySet
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache

from frontend.access import (
    OrgRequest,
    org_view,
    refused_in_environment,
    refused_in_every_environment,
    selected_environment,
)
from frontend.forms import add_service_error
from station.core.errors import Conflict, StationError
from station.tools import services
from station.tools.models import McpServer, Tool
from station.vault.models import Secret, Variable
from tenants.authz import Principal, has_permission
from tenants.models import Environment

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


# --- discovery ------------------------------------------------------------------------------


def _optional(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def request_discovery(actor: Principal, server: McpServer) -> str:
    """Start discovering `server`'s tools; returns what happened, for a flash message.

    Raises StationError when discovery fails synchronously or is not available."""
    tasks = _optional("station.tools.tasks")
    if tasks is not None and hasattr(tasks, "request_discovery"):
        tasks.request_discovery(actor=actor, server=server)
        return "queued"
    discovery = _optional("station.tools.discovery")
    if discovery is not None and hasattr(discovery, "discover"):
        # Synchronous fallback (records the tools, or the failure on the server row).
        result = discovery.discover(server, actor=actor,
                                    purpose=f"discovery of MCP server {server.name}")
        if not result.ok:
            raise Conflict(result.error)
        return "done"
    raise Conflict("Tool discovery is not available on this server yet.")


# --- forms ----------------------------------------------------------------------------------


def _parse_pairs(text: str, what: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not _KEY.match(key):
            raise forms.ValidationError(
                f"Line {number}: write {what}=value, e.g. TOKEN=${{secret:GITHUB_TOKEN}}.")
        if key in pairs:
            raise forms.ValidationError(f"Line {number}: {key} is given twice.")
        pairs[key] = value.strip()
    return pairs


def _pairs_text(pairs: dict[str, str]) -> str:
    return "\n".join(f"{k}={v}" for k, v in pairs.items())


class McpServerForm(forms.Form):
    name = forms.CharField(max_length=64, help_text="Letters, digits and underscores, starting "
                                                    "with a letter, e.g. github.")
    description = forms.CharField(max_length=500, required=False)
    transport = forms.ChoiceField(
        choices=[(McpServer.STDIO, "stdio — Station starts it as a local process"),
                 (McpServer.HTTP, "Streamable HTTP — a remote server")],
        widget=forms.RadioSelect, initial=McpServer.STDIO)
    command = forms.CharField(max_length=500, required=False,
                              help_text="The program to start, e.g. /usr/local/bin/mcp-github.",
                              widget=forms.TextInput(attrs={"spellcheck": "false"}))
    args = forms.CharField(required=False, label="Arguments", help_text="One per line.",
                           widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false"}))
    env = forms.CharField(required=False, label="Environment variables",
                          help_text="KEY=value, one per line.",
                          widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false"}))
    url = forms.CharField(max_length=2000, required=False, label="URL",
                          help_text="e.g. https://mcp.example.com/mcp",
                          widget=forms.TextInput(attrs={"spellcheck": "false"}))
    headers = forms.CharField(required=False, label="Headers",
                              help_text="Name=value, one per line, e.g. "
                                        "Authorization=Bearer ${secret:API_TOKEN}.",
                              widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false"}))
    enabled = forms.BooleanField(required=False, initial=True)
    reuse_sessions = forms.BooleanField(
        required=False, initial=False, label="Reuse sessions across runs",
        help_text=McpServer._meta.get_field("reuse_sessions").help_text)

    STDIO_FIELDS = ("command", "args", "env")
    HTTP_FIELDS = ("url", "headers")

    def __init__(self, *args: Any, editing: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if editing:
            self.fields["name"].disabled = True
            self.fields["name"].help_text = "The name cannot change."

    def clean_args(self) -> list[str]:
        return [line.strip() for line in self.cleaned_data["args"].splitlines() if line.strip()]

    def clean_env(self) -> dict[str, str]:
        return _parse_pairs(self.cleaned_data["env"], "KEY")

    def clean_headers(self) -> dict[str, str]:
        return _parse_pairs(self.cleaned_data["headers"], "Name")

    def config(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {key: data[key] for key in ("description", "transport", "command", "args",
                                           "env", "url", "headers", "enabled",
                                           "reuse_sessions")}

    def field_group(self, names: tuple[str, ...]) -> list[forms.BoundField]:
        return [self[name] for name in names]

    @property
    def stdio_fields(self) -> list[forms.BoundField]:
        return self.field_group(self.STDIO_FIELDS)

    @property
    def http_fields(self) -> list[forms.BoundField]:
        return self.field_group(self.HTTP_FIELDS)

    @property
    def common_fields(self) -> list[forms.BoundField]:
        return self.field_group(("name", "description"))

    @staticmethod
    def initial_for(server: McpServer) -> dict[str, Any]:
        return {"name": server.name, "description": server.description,
                "transport": server.transport, "command": server.command,
                "args": "\n".join(server.args), "env": _pairs_text(server.env),
                "url": server.url, "headers": _pairs_text(server.headers),
                "enabled": server.enabled, "reuse_sessions": server.reuse_sessions}


# --- lookups --------------------------------------------------------------------------------


def _environments(request: OrgRequest) -> list[Environment]:
    return [env for env in Environment.objects.order_by("created_at")
            if any(has_permission(request.principal, p, request.org, env)
                   for p in ("tools.read", "tools.manage"))]


def _servers() -> QuerySet[McpServer]:
    return McpServer.objects.select_related("environment").annotate(
        tool_count=Count("tools", filter=~Q(tools__status=Tool.REMOVED)),
        changed_count=Count("tools", filter=Q(tools__status=Tool.CHANGED)))


def _server(request: OrgRequest, server_id: uuid.UUID) -> McpServer:
    server = _servers().filter(pk=server_id, environment__in=_environments(request)).first()
    if server is None:
        raise Http404("No such MCP server.")
    return server


def _tool(request: OrgRequest, tool_id: uuid.UUID) -> Tool:
    tool = Tool.objects.select_related("server", "server__environment").filter(
        pk=tool_id, server__environment__in=_environments(request)).first()
    if tool is None:
        raise Http404("No such tool.")
    return tool


def _can_manage(request: OrgRequest, env: Environment) -> bool:
    return has_permission(request.principal, "tools.manage", request.org, env)


def _list_url(request: OrgRequest, env: Environment) -> str:
    return reverse("console:mcp", args=[request.org.slug]) + f"?env={env.slug}"


def _detail_url(request: OrgRequest, server: McpServer) -> str:
    return reverse("console:mcp-detail", args=[request.org.slug, server.pk])


def _references_hint(env: Environment) -> dict[str, list[str]]:
    return {
        "secrets": list(Secret.objects.filter(environment=env).order_by("name")
                        .values_list("name", flat=True)),
        "variables": list(Variable.objects.filter(environment=env).order_by("name")
                          .values_list("name", flat=True)),
    }


# --- list, create, edit, delete -------------------------------------------------------------


@org_view("tools.read")
def server_list(request: OrgRequest) -> HttpResponse:
    environments = _environments(request)
    current = selected_environment(request, environments)
    return render(request, "console/mcp/list.html", {
        "environments": environments,
        "current_env": current,
        "servers": _servers().filter(environment=current) if current else [],
        "can_manage": current is not None and _can_manage(request, current),
    })


def _form_page(request: OrgRequest, form: McpServerForm, env: Environment,
               server: McpServer | None) -> HttpResponse:
    return render(request, "console/mcp/form.html", {
        "form": form, "env": env, "server": server, "hint": _references_hint(env),
    })


@never_cache
@org_view("tools.manage")
def server_create(request: OrgRequest) -> HttpResponse:
    environments = [env for env in _environments(request) if _can_manage(request, env)]
    env = selected_environment(request, environments)
    if env is None:
        return refused_in_every_environment(request, "tools.manage")
    form = McpServerForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            server = services.create_mcp_server(
                actor=request.principal, environment=env, name=form.cleaned_data["name"],
                **form.config())
        except StationError as exc:
            add_service_error(form, exc)
        else:
            messages.success(request, f"MCP server “{server.name}” added to {env.slug}. "
                                      "Discover its tools next.")
            return redirect(_detail_url(request, server))
    return _form_page(request, form, env, None)


@never_cache
@org_view("tools.manage")
def server_edit(request: OrgRequest, server_id: uuid.UUID) -> HttpResponse:
    server = _server(request, server_id)
    if refused := refused_in_environment(request, "tools.manage", server.environment):
        return refused
    form = McpServerForm(request.POST or None, editing=True,
                         initial=McpServerForm.initial_for(server))
    if request.method == "POST" and form.is_valid():
        try:
            services.update_mcp_server(actor=request.principal, server=server, **form.config())
        except StationError as exc:
            add_service_error(form, exc)
        else:
            messages.success(request, f"MCP server “{server.name}” saved.")
            return redirect(_detail_url(request, server))
    return _form_page(request, form, server.environment, server)


@org_view("tools.manage")
def server_delete(request: OrgRequest, server_id: uuid.UUID) -> HttpResponse:
    server = _server(request, server_id)
    if refused := refused_in_environment(request, "tools.manage", server.environment):
        return refused
    count: int = getattr(server, "tool_count", 0)
    if request.method == "POST":
        try:
            services.delete_mcp_server(actor=request.principal, server=server)
        except StationError as exc:
            messages.error(request, exc.detail)
        else:
            messages.success(request, f"MCP server “{server.name}” deleted from "
                                      f"{server.environment.slug}.")
        return redirect(_list_url(request, server.environment))
    return render(request, "console/confirm.html", {
        "title": f"Delete MCP server “{server.name}” from {server.environment.slug}?",
        "body": f"Its {count} discovered tool{'s' * (count != 1)} "
                "and their approvals are deleted with it; agents using them lose them. "
                "This cannot be undone.",
        "confirm_label": "Delete server",
        "danger": True,
        "cancel_url": "console:mcp",
    })


# --- detail and discovery -------------------------------------------------------------------


@org_view("tools.read")
def server_detail(request: OrgRequest, server_id: uuid.UUID) -> HttpResponse:
    server = _server(request, server_id)
    return render(request, "console/mcp/detail.html", {
        "server": server,
        "tools": server.tools.all(),
        "can_manage": _can_manage(request, server.environment),
    })


@org_view("tools.manage")
def server_discover(request: OrgRequest, server_id: uuid.UUID) -> HttpResponse:
    server = _server(request, server_id)
    if refused := refused_in_environment(request, "tools.manage", server.environment):
        return refused
    if request.method == "POST":
        try:
            outcome = request_discovery(request.principal, server)
        except StationError as exc:
            messages.error(request, f"Discovery failed: {exc.detail}")
        else:
            if outcome == "queued":
                messages.info(request, f"Discovering the tools of “{server.name}”; reload "
                                       "this page in a few seconds.")
            else:
                messages.success(request, f"Discovered the tools of “{server.name}”.")
    return redirect(_detail_url(request, server))


# --- tool review ----------------------------------------------------------------------------


def _pretty(value: Any) -> list[str]:
    if value is None:
        return ["—"]
    if isinstance(value, str):
        return value.splitlines() or [""]
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False).splitlines()


def _side_by_side(before: Any, after: Any) -> list[dict[str, Any]]:
    """Rows of (left line, right line) with a `changed` flag per side (difflib opcodes)."""
    left, right = _pretty(before), _pretty(after)
    rows: list[dict[str, Any]] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=left, b=right,
                                                       autojunk=False).get_opcodes():
        a, b = left[i1:i2], right[j1:j2]
        for index in range(max(len(a), len(b))):
            rows.append({
                "left": a[index] if index < len(a) else None,
                "right": b[index] if index < len(b) else None,
                "changed": tag != "equal",
            })
    return rows


PARTS = (("description", "Description"), ("input_schema", "Input schema"),
         ("output_schema", "Output schema"), ("annotations", "Annotations"))


@org_view("tools.read")
def tool_review(request: OrgRequest, tool_id: uuid.UUID) -> HttpResponse:
    tool = _tool(request, tool_id)
    approved = tool.approved_content or {}
    current = {"description": tool.description, "input_schema": tool.input_schema,
               "output_schema": tool.output_schema, "annotations": tool.annotations}
    parts = [{"key": key, "label": label, "changed": approved.get(key) != current[key],
              "rows": _side_by_side(approved.get(key), current[key])}
             for key, label in PARTS]
    return render(request, "console/mcp/tool.html", {
        "tool": tool,
        "server": tool.server,
        "parts": parts,
        "can_manage": _can_manage(request, tool.server.environment),
    })


@org_view("tools.manage")
def tool_approve(request: OrgRequest, tool_id: uuid.UUID) -> HttpResponse:
    tool = _tool(request, tool_id)
    if refused := refused_in_environment(request, "tools.manage", tool.server.environment):
        return refused
    if request.method == "POST":
        try:
            services.approve_tool(actor=request.principal, tool=tool)
        except StationError as exc:
            messages.error(request, exc.detail)
        else:
            messages.success(request, f"Tool “{tool.name}” approved; agents may call it again.")
            return redirect(_detail_url(request, tool.server))
    return redirect("console:mcp-tool", org_slug=request.org.slug, tool_id=tool.pk)
