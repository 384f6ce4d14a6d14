"""Console pages for run triggers: cron schedules, signed inbound webhooks, signed outbound
webhooks and their delivery log, per environment (optionally narrowed to one agent).

Every write goes through `station.triggers.services`; this module only checks up front, in
the object's environment, the permissions those services will demand, so a refusal is a page
naming the permission rather than a failed form. Signing secrets exist in plaintext only in
the response to a create or rotate POST: never stored, put in the session or a message.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any
from zoneinfo import available_timezones

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Count, Q, QuerySet
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache

from frontend.access import (
    OrgRequest,
    org_view,
    refused_in_environment,
    refused_in_every_environment,
    selected_environment,
)
from frontend.forms import add_service_error
from frontend.views.agents import JsonField
from station.agents.models import Agent
from station.core.errors import StationError
from station.triggers import cron, services
from station.triggers.models import (
    EVENTS,
    InboundWebhook,
    OutboundWebhook,
    Schedule,
    WebhookDelivery,
)
from tenants.authz import has_permission
from tenants.models import Environment

# What each kind of change needs in the environment (mirrors station.triggers.services).
SCHEDULE_PERMS = ("agents.write", "agents.run")
INBOUND_PERMS = ("agents.write", "agents.run")
OUTBOUND_PERMS = ("agents.write", "runs.read")
DELETE_PERMS = ("agents.write",)
DELIVERIES_PER_PAGE = 25


# --- forms ----------------------------------------------------------------------------------


def _agent_choices(environment: Environment) -> list[tuple[str, str]]:
    return [(str(agent.pk), agent.name if agent.latest_version
             else f"{agent.name} (not published yet: its runs fail until it is)")
            for agent in Agent.objects.filter(environment=environment).order_by("name")]


class _AgentBoundForm(forms.Form):
    """A form whose `agent` field chooses among the environment's agents (cleaned to the
    Agent); disabled when editing, since a trigger never moves to another agent."""

    agent = forms.ChoiceField()
    agent_required = "Choose the agent."

    def __init__(self, *args: Any, environment: Environment, editing: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.environment = environment
        field = self.fields["agent"]
        assert isinstance(field, forms.ChoiceField)
        field.error_messages = {**field.error_messages, "required": self.agent_required}
        field.choices = self.extra_agent_choices() + _agent_choices(environment)
        if editing:
            field.disabled = True
            field.help_text = "A trigger stays with its agent: delete it and create another."

    def extra_agent_choices(self) -> list[tuple[str, str]]:
        return [("", "— choose —")]

    def clean_agent(self) -> Agent | None:
        value = self.cleaned_data.get("agent") or ""
        if not value:
            return None
        agent = Agent.objects.filter(pk=value, environment=self.environment).first()
        if agent is None:
            raise forms.ValidationError("No such agent in this environment.")
        return agent


class ScheduleForm(_AgentBoundForm):
    agent_required = "Choose the agent to run."
    name = forms.CharField(max_length=100, required=False,
                           help_text="Optional, e.g. weekday-report.")
    cron = forms.CharField(
        max_length=120, label="Cron expression",
        help_text="Five fields: minute hour day-of-month month day-of-week. "
                  "<code>0 9 * * 1-5</code> is 09:00 Monday to Friday; <code>*/15 * * * *</code> "
                  "every 15 minutes.",
        widget=forms.TextInput(attrs={"spellcheck": "false", "class": "mono",
                                      "placeholder": "0 9 * * 1-5"}))
    timezone = forms.CharField(
        max_length=64, label="Time zone", initial="UTC",
        help_text="An IANA name such as Europe/Paris or America/New_York. The expression is "
                  "read on that zone's wall clock, daylight saving included.",
        widget=forms.TextInput(attrs={"list": "tz-names", "spellcheck": "false",
                                      "autocomplete": "off"}))
    input = JsonField(empty={}, label="Run input (JSON)",
                      help_text='The input each run gets, e.g. {"question": "What changed '
                                'overnight?"}. Empty means {}.')
    enabled = forms.BooleanField(required=False, initial=True)

    FIELDS = ("name", "cron", "timezone", "input", "enabled")

    def config(self) -> dict[str, Any]:
        return {key: self.cleaned_data[key] for key in self.FIELDS}

    @staticmethod
    def initial_for(schedule: Schedule) -> dict[str, Any]:
        return {"agent": str(schedule.agent_id), "name": schedule.name, "cron": schedule.cron,
                "timezone": schedule.timezone, "input": schedule.input,
                "enabled": schedule.enabled}


class InboundWebhookForm(_AgentBoundForm):
    agent_required = "Choose the agent its calls run."
    name = forms.CharField(max_length=100, required=False,
                           help_text="Optional: who calls it, e.g. ticketing-system.")
    enabled = forms.BooleanField(required=False, initial=True)


class OutboundWebhookForm(_AgentBoundForm):
    name = forms.CharField(max_length=100, required=False)
    url = forms.CharField(max_length=2000, label="URL",
                          help_text="Your receiver, e.g. https://hooks.example.com/station. "
                                    "Station POSTs signed JSON there; redirects are not "
                                    "followed.",
                          widget=forms.TextInput(attrs={"spellcheck": "false"}))
    events = forms.MultipleChoiceField(choices=EVENTS, required=False,
                                       widget=forms.CheckboxSelectMultiple,
                                       initial=[name for name, _ in EVENTS],
                                       help_text="When a run finishes with one of these.")
    enabled = forms.BooleanField(required=False, initial=True)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["agent"].required = False
        self.fields["agent"].label = "Runs of"
        self.order_fields(["name", "url", "agent", "events", "enabled"])

    def extra_agent_choices(self) -> list[tuple[str, str]]:
        return [("", f"Every agent in {self.environment.name}")]

    def changes(self) -> dict[str, Any]:
        return {key: self.cleaned_data[key] for key in ("name", "url", "events", "enabled")}

    @staticmethod
    def initial_for(hook: OutboundWebhook) -> dict[str, Any]:
        return {"agent": str(hook.agent_id or ""), "name": hook.name, "url": hook.url,
                "events": hook.events, "enabled": hook.enabled}


# --- lookups --------------------------------------------------------------------------------


def _environments(request: OrgRequest) -> list[Environment]:
    """Environments where the principal may see agents (as the triggers API judges it)."""
    return [env for env in Environment.objects.order_by("created_at")
            if any(has_permission(request.principal, p, request.org, env)
                   for p in ("agents.read", "agents.write"))]


def _can(request: OrgRequest, env: Environment, permissions: tuple[str, ...]) -> bool:
    return all(has_permission(request.principal, p, request.org, env) for p in permissions)


def _refused(request: OrgRequest, env: Environment,
             permissions: tuple[str, ...]) -> HttpResponse | None:
    for permission in permissions:
        if refused := refused_in_environment(request, permission, env):
            return refused
    return None



def _writable_environment(request: OrgRequest,
                          permissions: tuple[str, ...]) -> Environment | None:
    environments = [env for env in _environments(request) if _can(request, env, permissions)]
    return selected_environment(request, environments)


def _object(request: OrgRequest, model: Any, object_id: uuid.UUID) -> Any:
    # Another org's id and a missing one are the same 404 (RLS scopes the query too).
    obj = (model.objects.select_related("agent", "environment")
           .filter(pk=object_id, environment__in=_environments(request)).first())
    if obj is None:
        raise Http404("No such trigger.")
    return obj


def _selected_agent(request: OrgRequest, env: Environment | None) -> Agent | None:
    raw = request.GET.get("agent", "")
    try:
        agent_id = uuid.UUID(raw)
    except ValueError:
        return None
    return Agent.objects.filter(pk=agent_id, environment=env).first() if env else None


def _list_url(request: OrgRequest, env: Environment, agent: Agent | None = None) -> str:
    url = reverse("console:triggers", args=[request.org.slug]) + f"?env={env.slug}"
    return url + f"&agent={agent.pk}" if agent else url


def _run_url(request: OrgRequest, env: Environment, run_id: Any) -> str | None:
    """A link to the run page when the principal may read runs there."""
    if run_id is None or not has_permission(request.principal, "runs.read", request.org, env):
        return None
    return reverse("console:runs-detail", args=[request.org.slug, run_id])


def _hook_url(request: OrgRequest, hook: InboundWebhook) -> str:
    return request.build_absolute_uri(reverse("inbound-webhook", args=[str(hook.pk)]))


# --- the overview ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ScheduleRow:
    schedule: Schedule
    description: str
    next_fire: datetime | None
    last_run_url: str | None


def _schedule_rows(request: OrgRequest, schedules: QuerySet[Schedule]) -> list[ScheduleRow]:
    now = timezone.now()
    rows = []
    for schedule in schedules:
        try:
            upcoming = (cron.next_fire(schedule.cron, schedule.timezone, now)
                        if schedule.enabled else None)
        except StationError:  # a row written before a rule tightened: show it, not crash
            upcoming = None
        rows.append(ScheduleRow(schedule, cron.describe(schedule.cron), upcoming,
                                _run_url(request, schedule.environment, schedule.last_run_id)))
    return rows


@org_view("agents.read")
def trigger_list(request: OrgRequest) -> HttpResponse:
    environments = _environments(request)
    current = selected_environment(request, environments)
    agent = _selected_agent(request, current)
    schedules = Schedule.objects.select_related("agent", "environment").filter(
        environment=current)
    inbound = InboundWebhook.objects.select_related("agent").filter(environment=current)
    outbound = OutboundWebhook.objects.select_related("agent").filter(
        environment=current).annotate(
        failed_count=Count("deliveries", filter=Q(deliveries__status=WebhookDelivery.FAILED)),
        pending_count=Count("deliveries",
                            filter=Q(deliveries__status=WebhookDelivery.PENDING)))
    if agent is not None:
        schedules = schedules.filter(agent=agent)
        inbound = inbound.filter(agent=agent)
        # Environment-wide webhooks fire for this agent's runs too.
        outbound = outbound.filter(Q(agent=agent) | Q(agent__isnull=True))
    return render(request, "console/triggers/list.html", {
        "environments": environments,
        "current_env": current,
        "agent": agent,
        "agent_query": f"&agent={agent.pk}" if agent else "",
        "has_agents": current is not None
                      and Agent.objects.filter(environment=current).exists(),
        "schedules": _schedule_rows(request, schedules) if current else [],
        "inbound": list(inbound) if current else [],
        "outbound": list(outbound) if current else [],
        "can_schedule": current is not None and _can(request, current, SCHEDULE_PERMS),
        "can_inbound": current is not None and _can(request, current, INBOUND_PERMS),
        "can_outbound": current is not None and _can(request, current, OUTBOUND_PERMS),
        "can_delete": current is not None and _can(request, current, DELETE_PERMS),
    })


# --- schedules ------------------------------------------------------------------------------


@cache
def _zone_names() -> list[str]:
    """IANA names for the time zone field's suggestions (the service decides validity)."""
    return sorted(available_timezones())


def _schedule_page(request: OrgRequest, form: ScheduleForm, env: Environment,
                   schedule: Schedule | None) -> HttpResponse:
    return render(request, "console/triggers/schedule_form.html", {
        "form": form, "env": env, "schedule": schedule,
        "zones": _zone_names(),
        "cancel_url": _list_url(request, env, schedule.agent if schedule else None)})


@never_cache
@org_view("agents.write")
def schedule_create(request: OrgRequest) -> HttpResponse:
    env = _writable_environment(request, SCHEDULE_PERMS)
    if env is None:
        return refused_in_every_environment(request, *SCHEDULE_PERMS)
    preselected = _selected_agent(request, env)
    form = ScheduleForm(request.POST or None, environment=env,
                        initial={"agent": str(preselected.pk) if preselected else ""})
    if request.method == "POST" and form.is_valid():
        agent, config = form.cleaned_data["agent"], form.config()
        try:
            services.create_schedule(
                actor=request.principal, agent=agent, cron_expression=config["cron"],
                timezone_name=config["timezone"], input=config["input"],
                name=config["name"], enabled=config["enabled"])
        except StationError as exc:
            add_service_error(form, exc)
        else:
            messages.success(request, f"Schedule for “{agent.name}” created: "
                                      f"{cron.describe(config['cron'])} "
                                      f"({config['timezone']}).")
            return redirect(_list_url(request, env))
    return _schedule_page(request, form, env, None)


@never_cache
@org_view("agents.write")
def schedule_edit(request: OrgRequest, schedule_id: uuid.UUID) -> HttpResponse:
    schedule = _object(request, Schedule, schedule_id)
    if refused := _refused(request, schedule.environment, SCHEDULE_PERMS):
        return refused
    form = ScheduleForm(request.POST or None, environment=schedule.environment, editing=True,
                        initial=ScheduleForm.initial_for(schedule))
    if request.method == "POST" and form.is_valid():
        try:
            services.update_schedule(actor=request.principal, schedule=schedule,
                                     **form.config())
        except StationError as exc:
            add_service_error(form, exc)
        else:
            messages.success(request, f"Schedule “{schedule}” saved.")
            return redirect(_list_url(request, schedule.environment))
    return _schedule_page(request, form, schedule.environment, schedule)


@org_view("agents.write")
def schedule_delete(request: OrgRequest, schedule_id: uuid.UUID) -> HttpResponse:
    schedule = _object(request, Schedule, schedule_id)
    if refused := _refused(request, schedule.environment, DELETE_PERMS):
        return refused
    if request.method == "POST":
        try:
            services.delete_schedule(actor=request.principal, schedule=schedule)
        except StationError as exc:
            messages.error(request, exc.detail)
        else:
            messages.success(request, f"Schedule “{schedule}” of “{schedule.agent.name}” "
                                      "deleted.")
        return redirect(_list_url(request, schedule.environment))
    return render(request, "console/confirm.html", {
        "title": f"Delete the schedule “{schedule}” of {schedule.agent.name}?",
        "body": "It stops starting runs at once. Runs it already started are kept. "
                "This cannot be undone.",
        "confirm_label": "Delete schedule", "danger": True, "cancel_url": "console:triggers",
    })


# --- signing secrets ------------------------------------------------------------------------


def _example_value(schema: Any) -> Any:
    kind = schema.get("type") if isinstance(schema, dict) else None
    return {"integer": 1, "number": 1, "boolean": True, "array": [],
            "object": {}}.get(kind if isinstance(kind, str) else "", "…")


def example_body(agent: Agent) -> str:
    """A JSON body the agent's input schema accepts in shape: its required properties (or
    all of them) with placeholder values."""
    schema = agent.input_schema if isinstance(agent.input_schema, dict) else {}
    raw = schema.get("properties")
    properties: dict[str, Any] = raw if isinstance(raw, dict) else {}
    required = schema.get("required")
    names = [n for n in required if isinstance(n, str)] if isinstance(required, list) else []
    names = names or list(properties)
    body = {name: _example_value(properties.get(name)) for name in names}
    return json.dumps(body or {"question": "What changed overnight?"}, ensure_ascii=False)


def curl_example(url: str, secret: str, body: str) -> str:
    """The shell recipe of docs/triggers.md: HMAC-SHA256 of `<timestamp>.<body>`."""
    quoted_body = body.replace("'", "'\\''")
    return "\n".join([
        f"SECRET='{secret}'",
        f"URL='{url}'",
        f"BODY='{quoted_body}'",
        "TS=$(date +%s)",
        "SIG=$(printf '%s.%s' \"$TS\" \"$BODY\" | openssl dgst -sha256 -hmac \"$SECRET\" -hex "
        "| sed 's/^.* //')",
        "curl -sS -X POST \"$URL\" -H 'Content-Type: application/json' \\",
        "  -H \"Station-Timestamp: $TS\" -H \"Station-Signature: v1=$SIG\" "
        "--data-raw \"$BODY\"",
    ])


VERIFY_EXAMPLE = """import hashlib, hmac, time

SECRET = "whsec_…"  # the secret above; keep it in your own secret store

def verify(headers, body: bytes) -> bool:
    ts = headers["Station-Timestamp"]
    expected = hmac.new(SECRET.encode(), ts.encode() + b"." + body,
                        hashlib.sha256).hexdigest()
    offered = headers["Station-Signature"].removeprefix("v1=")
    return hmac.compare_digest(expected, offered) and abs(time.time() - int(ts)) <= 300"""


def _secret_page(request: OrgRequest, hook: Any, secret: str, *, rotated: bool) -> HttpResponse:
    inbound = isinstance(hook, InboundWebhook)
    context: dict[str, Any] = {"hook": hook, "secret": secret, "rotated": rotated,
                               "inbound": inbound}
    if inbound:
        context["hook_url"] = _hook_url(request, hook)
        context["curl"] = curl_example(context["hook_url"], secret, example_body(hook.agent))
        context["back_url"] = reverse("console:triggers-inbound-detail",
                                      args=[request.org.slug, hook.pk])
    else:
        context["verify"] = VERIFY_EXAMPLE
        context["back_url"] = reverse("console:triggers-outbound-detail",
                                      args=[request.org.slug, hook.pk])
    # Rendered into this response only; never_cache on the calling views keeps it out of
    # shared and browser caches.
    return render(request, "console/triggers/secret.html", context)


def _rotate(request: OrgRequest, hook: Any, permissions: tuple[str, ...]) -> HttpResponse:
    if refused := _refused(request, hook.environment, permissions):
        return refused
    if request.method == "POST":
        try:
            secret = services.rotate_webhook_secret(actor=request.principal, webhook=hook)
        except StationError as exc:
            messages.error(request, exc.detail)
            return redirect(_list_url(request, hook.environment))
        return _secret_page(request, hook, secret, rotated=True)
    who = "callers" if isinstance(hook, InboundWebhook) else "your receiver"
    return render(request, "console/confirm.html", {
        "title": f"Rotate the signing secret of “{hook}”?",
        "body": f"A new secret is shown once on the next page. The current one (…"
                f"{hook.secret_last_four}) stops working at once: update {who} right away.",
        "confirm_label": "Rotate secret", "danger": True, "cancel_url": "console:triggers",
    })


def _delete(request: OrgRequest, hook: Any, what: str) -> HttpResponse:
    if refused := _refused(request, hook.environment, DELETE_PERMS):
        return refused
    if request.method == "POST":
        try:
            services.delete_webhook(actor=request.principal, webhook=hook)
        except StationError as exc:
            messages.error(request, exc.detail)
        else:
            messages.success(request, f"{what.capitalize()} “{hook}” deleted.")
        return redirect(_list_url(request, hook.environment))
    extra = ("Requests to its URL are refused from now on." if isinstance(hook, InboundWebhook)
             else "Its delivery log is deleted with it; pending retries stop.")
    return render(request, "console/confirm.html", {
        "title": f"Delete the {what} “{hook}”?",
        "body": f"{extra} This cannot be undone.",
        "confirm_label": f"Delete {what}", "danger": True, "cancel_url": "console:triggers",
    })


# --- inbound webhooks -----------------------------------------------------------------------


@never_cache
@org_view("agents.write")
def inbound_create(request: OrgRequest) -> HttpResponse:
    env = _writable_environment(request, INBOUND_PERMS)
    if env is None:
        return refused_in_every_environment(request, *INBOUND_PERMS)
    preselected = _selected_agent(request, env)
    form = InboundWebhookForm(request.POST or None, environment=env,
                              initial={"agent": str(preselected.pk) if preselected else ""})
    if request.method == "POST" and form.is_valid():
        try:
            hook, secret = services.create_inbound_webhook(
                actor=request.principal, agent=form.cleaned_data["agent"],
                name=form.cleaned_data["name"], enabled=form.cleaned_data["enabled"])
        except StationError as exc:
            add_service_error(form, exc)
        else:
            return _secret_page(request, hook, secret, rotated=False)
    return render(request, "console/triggers/inbound_form.html", {
        "form": form, "env": env, "cancel_url": _list_url(request, env, preselected)})


@org_view("agents.read")
def inbound_detail(request: OrgRequest, webhook_id: uuid.UUID) -> HttpResponse:
    hook = _object(request, InboundWebhook, webhook_id)
    url = _hook_url(request, hook)
    return render(request, "console/triggers/inbound_detail.html", {
        "hook": hook, "hook_url": url,
        "curl": curl_example(url, "whsec_…", example_body(hook.agent)),
        "can_change": _can(request, hook.environment, INBOUND_PERMS),
        "can_delete": _can(request, hook.environment, DELETE_PERMS),
    })


@org_view("agents.write")
def inbound_enabled(request: OrgRequest, webhook_id: uuid.UUID) -> HttpResponse:
    hook = _object(request, InboundWebhook, webhook_id)
    if refused := _refused(request, hook.environment, INBOUND_PERMS):
        return refused
    if request.method == "POST":
        enabled = request.POST.get("enabled") == "1"
        try:
            services.update_inbound_webhook(actor=request.principal, webhook=hook,
                                            enabled=enabled)
        except StationError as exc:
            messages.error(request, exc.detail)
        else:
            messages.success(request, f"Inbound webhook “{hook}” "
                                      f"{'enabled' if enabled else 'disabled: calls get 403'}.")
    return redirect("console:triggers-inbound-detail", org_slug=request.org.slug,
                    webhook_id=hook.pk)


@never_cache
@org_view("agents.write")
def inbound_rotate(request: OrgRequest, webhook_id: uuid.UUID) -> HttpResponse:
    return _rotate(request, _object(request, InboundWebhook, webhook_id), INBOUND_PERMS)


@org_view("agents.write")
def inbound_delete(request: OrgRequest, webhook_id: uuid.UUID) -> HttpResponse:
    return _delete(request, _object(request, InboundWebhook, webhook_id), "inbound webhook")


# --- outbound webhooks ----------------------------------------------------------------------


def _outbound_page(request: OrgRequest, form: OutboundWebhookForm, env: Environment,
                   hook: OutboundWebhook | None, cancel_url: str) -> HttpResponse:
    return render(request, "console/triggers/outbound_form.html", {
        "form": form, "env": env, "hook": hook, "cancel_url": cancel_url})


@never_cache
@org_view("agents.write")
def outbound_create(request: OrgRequest) -> HttpResponse:
    env = _writable_environment(request, OUTBOUND_PERMS)
    if env is None:
        return refused_in_every_environment(request, *OUTBOUND_PERMS)
    preselected = _selected_agent(request, env)
    form = OutboundWebhookForm(request.POST or None, environment=env,
                               initial={"agent": str(preselected.pk) if preselected else ""})
    if request.method == "POST" and form.is_valid():
        try:
            hook, secret = services.create_outbound_webhook(
                actor=request.principal, environment=env, agent=form.cleaned_data["agent"],
                **form.changes())
        except StationError as exc:
            add_service_error(form, exc)
        else:
            return _secret_page(request, hook, secret, rotated=False)
    return _outbound_page(request, form, env, None, _list_url(request, env, preselected))


@never_cache
@org_view("agents.write")
def outbound_edit(request: OrgRequest, webhook_id: uuid.UUID) -> HttpResponse:
    hook = _object(request, OutboundWebhook, webhook_id)
    if refused := _refused(request, hook.environment, OUTBOUND_PERMS):
        return refused
    form = OutboundWebhookForm(request.POST or None, environment=hook.environment,
                               editing=True, initial=OutboundWebhookForm.initial_for(hook))
    detail = reverse("console:triggers-outbound-detail", args=[request.org.slug, hook.pk])
    if request.method == "POST" and form.is_valid():
        try:
            services.update_outbound_webhook(actor=request.principal, webhook=hook,
                                             **form.changes())
        except StationError as exc:
            add_service_error(form, exc)
        else:
            messages.success(request, f"Outbound webhook “{hook}” saved.")
            return redirect(detail)
    return _outbound_page(request, form, hook.environment, hook, detail)


@org_view("agents.read")
def outbound_detail(request: OrgRequest, webhook_id: uuid.UUID) -> HttpResponse:
    hook = _object(request, OutboundWebhook, webhook_id)
    deliveries = (WebhookDelivery.objects.filter(webhook=hook).order_by("-created_at", "-pk")
                  .prefetch_related("attempt_log"))
    page = Paginator(deliveries, DELIVERIES_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "console/triggers/outbound_detail.html", {
        "hook": hook,
        "page": page,
        "deliveries": [(d, _run_url(request, hook.environment, d.run_id)) for d in page],
        "can_change": _can(request, hook.environment, OUTBOUND_PERMS),
        "can_delete": _can(request, hook.environment, DELETE_PERMS),
    })


@never_cache
@org_view("agents.write")
def outbound_rotate(request: OrgRequest, webhook_id: uuid.UUID) -> HttpResponse:
    return _rotate(request, _object(request, OutboundWebhook, webhook_id), OUTBOUND_PERMS)


@org_view("agents.write")
def outbound_delete(request: OrgRequest, webhook_id: uuid.UUID) -> HttpResponse:
    return _delete(request, _object(request, OutboundWebhook, webhook_id), "outbound webhook")
