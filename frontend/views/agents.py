"""Console pages for agents: list per environment, the editor (JSON fields for parameters and
the input schema, a multi-select of the environment's discovered tools, limits, inline field
errors from the services), the detail page with versions, Publish, dotprompt export, and the
dotprompt import form."""

from __future__ import annotations

import json
import uuid
from typing import Any

from django import forms
from django.contrib import messages
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
from station.agents import dotprompt, selectors, services
from station.agents.models import Agent
from station.agents.validation import LIMITS
from station.core.errors import StationError
from station.providers.models import ModelProvider
from station.tools.models import Tool
from tenants.authz import has_permission
from tenants.models import Environment

MAX_UPLOAD = dotprompt.MAX_BYTES


# --- forms ----------------------------------------------------------------------------------


class JsonField(forms.CharField):
    """A textarea holding JSON; cleans to the parsed value, naming the line of a syntax
    error. What the value must be (an object, a schema) is the service's to say."""

    def __init__(self, *, empty: Any, **kwargs: Any) -> None:
        self.empty = empty
        kwargs.setdefault("widget", forms.Textarea(attrs={"rows": 6, "spellcheck": "false",
                                                          "class": "mono"}))
        super().__init__(required=False, **kwargs)

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, dict | list):
            return json.dumps(value, indent=2, ensure_ascii=False)
        return value

    def clean(self, value: Any) -> Any:
        text = super().clean(value)
        if not text.strip():
            return self.empty
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(
                f"Not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}.") from exc


class AgentForm(forms.Form):
    name = forms.CharField(max_length=63, help_text="Lowercase letters, digits and hyphens, "
                                                    "e.g. triage-bot.")
    description = forms.CharField(max_length=500, required=False)
    provider = forms.ChoiceField(help_text="A model provider connection of this environment.")
    model = forms.CharField(max_length=200, help_text="The model's name on that provider, e.g. "
                                                      "gpt-4o-mini.")
    instructions = forms.CharField(required=False, strip=False, help_text="The system prompt.",
                                   widget=forms.Textarea(attrs={"rows": 10}))
    parameters = JsonField(empty={}, label="Parameters (JSON)",
                           help_text='Model settings, e.g. {"temperature": 0.2}. A scripted '
                                     'provider replays {"scenario": [...]}.')
    allowed_tools = forms.MultipleChoiceField(
        required=False, label="Allowed tools", widget=forms.SelectMultiple(attrs={"size": 8}),
        help_text="Tools discovered on this environment's MCP servers. Anything not selected "
                  "is denied.")
    input_schema = JsonField(empty={}, label="Input schema (JSON Schema)",
                             help_text='What a run\'s input must look like, e.g. {"type": '
                                       '"object", "required": ["ticket"]}. Empty accepts any '
                                       'input.')
    max_steps = forms.IntegerField(label="Max steps", initial=10,
                                   help_text=f"1–{LIMITS['max_steps'][1]:,} model calls per run")
    max_tokens = forms.IntegerField(label="Max tokens", initial=100_000,
                                    help_text=f"1–{LIMITS['max_tokens'][1]:,} per run")
    max_seconds = forms.IntegerField(label="Max seconds", initial=300,
                                     help_text=f"1–{LIMITS['max_seconds'][1]:,} wall time")

    DEFINITION = ("description", "provider", "model", "instructions", "parameters",
                  "allowed_tools", "input_schema", "max_steps", "max_tokens", "max_seconds")

    def __init__(self, *args: Any, environment: Environment, editing: bool = False,
                 current_tools: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        provider_field = self.fields["provider"]
        assert isinstance(provider_field, forms.ChoiceField)
        provider_field.choices = [("", "— choose —")] + [
            (p.name, f"{p.name} ({p.get_kind_display()})")
            for p in ModelProvider.objects.filter(environment=environment).order_by("name")]
        tools = [f"{server}/{tool}" for server, tool in Tool.objects.filter(
            server__environment=environment).exclude(status=Tool.REMOVED)
            .order_by("server__name", "name").values_list("server__name", "name")]
        # Keep tools the agent already lists even if gone, so the service can say why.
        tools += [t for t in current_tools or [] if t not in tools]
        tool_field = self.fields["allowed_tools"]
        assert isinstance(tool_field, forms.MultipleChoiceField)
        tool_field.choices = [(t, t) for t in tools]
        if editing:
            self.fields["name"].disabled = True
            self.fields["name"].help_text = "The name cannot change."

    def definition(self) -> dict[str, Any]:
        return {key: self.cleaned_data[key] for key in self.DEFINITION}

    @staticmethod
    def initial_for(agent: Agent) -> dict[str, Any]:
        return {"name": agent.name, **agent.definition()}


class PublishForm(forms.Form):
    note = forms.CharField(max_length=500, required=False,
                           widget=forms.TextInput(attrs={"placeholder": "What changed"}))


class ImportForm(forms.Form):
    file = forms.FileField(required=False, label=".prompt file")
    text = forms.CharField(required=False, strip=False, label="…or paste it",
                           widget=forms.Textarea(attrs={"rows": 10, "spellcheck": "false",
                                                        "class": "mono"}))
    name = forms.CharField(max_length=63, required=False,
                           help_text="Default: the file's name: key. An agent with this name "
                                     "in the environment is updated; otherwise one is created.")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        upload = data.get("file")
        if upload is not None:
            if upload.size > MAX_UPLOAD:
                self.add_error("file", f"Larger than {MAX_UPLOAD // 1024} KiB.")
                return data
            try:
                data["text"] = upload.read().decode("utf-8")
            except UnicodeDecodeError:
                self.add_error("file", "Not UTF-8 text.")
                return data
        if not data.get("text"):
            self.add_error("text", "Choose a .prompt file or paste its text.")
        return data


# --- lookups --------------------------------------------------------------------------------


def _environments(request: OrgRequest) -> list[Environment]:
    return [env for env in Environment.objects.order_by("created_at")
            if any(has_permission(request.principal, p, request.org, env)
                   for p in ("agents.read", "agents.write"))]


def _agent(request: OrgRequest, agent_id: uuid.UUID) -> Agent:
    agent = Agent.objects.select_related("environment").filter(
        pk=agent_id, environment__in=_environments(request)).first()
    if agent is None:
        raise Http404("No such agent.")
    return agent


def _can_write(request: OrgRequest, env: Environment) -> bool:
    return has_permission(request.principal, "agents.write", request.org, env)


def _detail_url(request: OrgRequest, agent: Agent) -> str:
    return reverse("console:agents-detail", args=[request.org.slug, agent.pk])


# --- list, create, edit, delete -------------------------------------------------------------


@org_view("agents.read")
def agent_list(request: OrgRequest) -> HttpResponse:
    environments = _environments(request)
    current = selected_environment(request, environments)
    return render(request, "console/agents/list.html", {
        "environments": environments,
        "current_env": current,
        "agents": selectors.agents_in(current) if current else [],
        "can_write": current is not None and _can_write(request, current),
    })


def _form_page(request: OrgRequest, form: AgentForm, env: Environment,
               agent: Agent | None) -> HttpResponse:
    return render(request, "console/agents/form.html", {
        "form": form, "env": env, "agent": agent,
        "has_providers": ModelProvider.objects.filter(environment=env).exists()})


@never_cache
@org_view("agents.write")
def agent_create(request: OrgRequest) -> HttpResponse:
    environments = [env for env in _environments(request) if _can_write(request, env)]
    env = selected_environment(request, environments)
    if env is None:
        return refused_in_every_environment(request, "agents.write")
    form = AgentForm(request.POST or None, environment=env)
    if request.method == "POST" and form.is_valid():
        try:
            agent = services.create_agent(actor=request.principal, environment=env,
                                          name=form.cleaned_data["name"], **form.definition())
        except StationError as exc:
            add_service_error(form, exc)
        else:
            messages.success(request, f"Agent “{agent.name}” created in {env.slug}. Publish it "
                                      "to run it.")
            return redirect(_detail_url(request, agent))
    return _form_page(request, form, env, None)


@never_cache
@org_view("agents.write")
def agent_edit(request: OrgRequest, agent_id: uuid.UUID) -> HttpResponse:
    agent = _agent(request, agent_id)
    if refused := refused_in_environment(request, "agents.write", agent.environment):
        return refused
    form = AgentForm(request.POST or None, environment=agent.environment, editing=True,
                     current_tools=agent.allowed_tools, initial=AgentForm.initial_for(agent))
    if request.method == "POST" and form.is_valid():
        try:
            services.update_agent(actor=request.principal, agent=agent, **form.definition())
        except StationError as exc:
            add_service_error(form, exc)
        else:
            messages.success(request, f"Agent “{agent.name}” saved. Publish to make the change "
                                      "what runs use.")
            return redirect(_detail_url(request, agent))
    return _form_page(request, form, agent.environment, agent)


@org_view("agents.write")
def agent_delete(request: OrgRequest, agent_id: uuid.UUID) -> HttpResponse:
    agent = _agent(request, agent_id)
    if refused := refused_in_environment(request, "agents.write", agent.environment):
        return refused
    if request.method == "POST":
        try:
            services.delete_agent(actor=request.principal, agent=agent)
        except StationError as exc:
            messages.error(request, exc.detail)
            return redirect(_detail_url(request, agent))
        messages.success(request, f"Agent “{agent.name}” deleted from {agent.environment.slug}.")
        return redirect(reverse("console:agents", args=[request.org.slug])
                        + f"?env={agent.environment.slug}")
    return render(request, "console/confirm.html", {
        "title": f"Delete agent “{agent.name}” from {agent.environment.slug}?",
        "body": f"Its {agent.latest_version} published version"
                f"{'s' * (agent.latest_version != 1)} and the history of its finished runs "
                "are deleted with it. This cannot be undone.",
        "confirm_label": "Delete agent",
        "danger": True,
        "cancel_url": "console:agents",
    })


# --- detail, publish, export, import ----------------------------------------------------------


@org_view("agents.read")
def agent_detail(request: OrgRequest, agent_id: uuid.UUID) -> HttpResponse:
    agent = _agent(request, agent_id)
    versions = list(agent.versions.order_by("-number"))
    latest = versions[0] if versions else None
    return render(request, "console/agents/detail.html", {
        "agent": agent,
        "versions": versions,
        "unpublished": latest is None or latest.content_hash != services.content_hash(
            agent.definition()),
        "can_write": _can_write(request, agent.environment),
        "publish_form": PublishForm(),
        "parameters": json.dumps(agent.parameters, indent=2, ensure_ascii=False),
        "input_schema": json.dumps(agent.input_schema, indent=2, ensure_ascii=False),
    })


@org_view("agents.write")
def agent_publish(request: OrgRequest, agent_id: uuid.UUID) -> HttpResponse:
    agent = _agent(request, agent_id)
    if refused := refused_in_environment(request, "agents.write", agent.environment):
        return refused
    if request.method == "POST":
        form = PublishForm(request.POST)
        note = form.cleaned_data["note"] if form.is_valid() else ""
        try:
            version = services.publish_agent(actor=request.principal, agent=agent, note=note)
        except StationError as exc:
            problems = [m for ms in exc.errors.values() for m in ms]
            messages.error(request, "Not published: " + (
                "; ".join(f"{f}: {m}" for f, ms in exc.errors.items() for m in ms)
                if problems else exc.detail))
        else:
            messages.success(request, f"Published “{agent.name}” v{version.number}.")
    return redirect(_detail_url(request, agent))


@org_view("agents.read")
def agent_dotprompt(request: OrgRequest, agent_id: uuid.UUID) -> HttpResponse:
    agent = _agent(request, agent_id)
    raw = request.GET.get("version", "")
    if raw:
        version = selectors.version_by_number(agent, int(raw)) if raw.isdigit() else None
        if version is None:
            raise Http404("No such version.")
        text = dotprompt.render(agent.name, version.definition, version=version.number,
                                digest=version.content_hash)
        filename = f"{agent.name}.v{version.number}.prompt"
    else:
        text = dotprompt.render(agent.name, agent.definition())
        filename = f"{agent.name}.prompt"
    response = HttpResponse(text, content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@never_cache
@org_view("agents.write")
def agent_import(request: OrgRequest) -> HttpResponse:
    environments = [env for env in _environments(request) if _can_write(request, env)]
    env = selected_environment(request, environments)
    if env is None:
        return refused_in_every_environment(request, "agents.write")
    form = ImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            agent, created = services.import_agent(
                actor=request.principal, environment=env, text=form.cleaned_data["text"],
                name=form.cleaned_data.get("name") or None)
        except StationError as exc:
            for field, problems in (exc.errors or {"": [exc.detail]}).items():
                for problem in problems:
                    target = "name" if field == "name" else None
                    form.add_error(target, f"{field}: {problem}" if field and target is None
                                   else problem)
        else:
            verb = "Imported" if created else "Updated"
            messages.success(request, f"{verb} agent “{agent.name}” in {env.slug} from the "
                                      "dotprompt file. Publish it to run it.")
            return redirect(_detail_url(request, agent))
    return render(request, "console/agents/import.html", {
        "form": form, "env": env, "environments": environments})
