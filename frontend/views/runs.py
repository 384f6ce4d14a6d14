"""Console pages for agent runs: the run list with filters, the "Run agent" form, the run
page (status, input, output, the step timeline, cancel, the held call), and approve/reject.

Every write goes through `station.runs.services` (start_run, cancel_run, decide_approval);
the live updates of the run page come from `frontend.views.run_events`.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.middleware.csrf import get_token
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
from station.agents.models import Agent
from station.core.errors import InvalidInput, StationError
from station.runs import selectors, services
from station.runs.models import Run, ToolApproval
from tenants.authz import has_permission
from tenants.models import Environment

PAGE_SIZE = 25


def environments_with(request: OrgRequest, permission: str) -> list[Environment]:
    """The org's environments where the principal holds `permission` (narrowing applies)."""
    return [env for env in Environment.objects.order_by("created_at")
            if has_permission(request.principal, permission, request.org, env)]


def readable_run(request: OrgRequest, run_id: uuid.UUID) -> Run:
    """A run the principal may read; another org's, a hidden environment's and a missing run
    all give the same 404."""
    run = selectors.select_run(run_id, environments_with(request, "runs.read"))
    if run is None:
        raise Http404("No such run.")
    return run


def run_url(request: OrgRequest, run: Run) -> str:
    return reverse("console:runs-detail", args=[request.org.slug, run.pk])


# --- the run page ----------------------------------------------------------------------------


def summary_context(*, org_slug: str, run: Run, approval: ToolApproval | None,
                    can_cancel: bool, can_approve: bool, csrf_token: str) -> dict[str, Any]:
    """What `runs/_summary.html` needs: rendered by the page and again, on every status
    change, by the live stream (which has no template context processors)."""
    end = run.finished_at or (timezone.now() if run.started_at else None)
    return {
        "org_slug": org_slug,
        "run": run,
        "approval": approval,
        "can_cancel": can_cancel and not run.is_final,
        "can_approve": can_approve,
        "duration": (end - run.started_at).total_seconds() if end and run.started_at else None,
        "csrf_token": csrf_token,
    }


@org_view("runs.read")
def run_detail(request: OrgRequest, run_id: uuid.UUID) -> HttpResponse:
    run = readable_run(request, run_id)
    steps = selectors.select_steps_after(run)
    approval = (selectors.select_pending_approval(run)
                if run.status == Run.WAITING_APPROVAL else None)
    env = run.environment
    summary = summary_context(
        org_slug=request.org.slug, run=run, approval=approval,
        can_cancel=has_permission(request.principal, "runs.cancel", request.org, env),
        can_approve=has_permission(request.principal, "runs.approve", request.org, env),
        csrf_token=get_token(request))
    return render(request, "console/runs/detail.html", {
        **summary,
        "steps": steps,
        "last_sequence": steps[-1].sequence if steps else 0,
        "input_json": json.dumps(run.input, indent=2, sort_keys=True, ensure_ascii=False),
        "events_url": reverse("console:runs-events", args=[request.org.slug, run.pk]),
    })


@org_view("runs.cancel")
def run_cancel(request: OrgRequest, run_id: uuid.UUID) -> HttpResponse:
    run = readable_run(request, run_id)
    if refused := refused_in_environment(request, "runs.cancel", run.environment):
        return refused
    if request.method == "POST":
        try:
            run = services.cancel_run(actor=request.principal, run=run)
        except StationError as exc:
            messages.error(request, exc.detail)
        else:
            if run.is_final:
                messages.success(request, "Run cancelled.")
            else:
                messages.info(request, "Cancel requested: the run stops at its next step "
                                       "(within one step).")
    return redirect(run_url(request, run))


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=[("approve", "Approve"), ("reject", "Reject")])
    reason = forms.CharField(max_length=1000, required=False)
    next = forms.ChoiceField(choices=[("run", "run"), ("approvals", "approvals")],
                             required=False)


@org_view("runs.approve")
def approval_decide(request: OrgRequest, approval_id: uuid.UUID) -> HttpResponse:
    approval = (ToolApproval.objects.select_related("run", "environment")
                .filter(pk=approval_id,
                        environment__in=environments_with(request, "runs.read")).first())
    if approval is None:
        raise Http404("No such held tool call.")
    if refused := refused_in_environment(request, "runs.approve", approval.environment):
        return refused
    form = DecisionForm(request.POST or None)
    back = run_url(request, approval.run)
    if request.method != "POST":
        return redirect(back)
    if not form.is_valid():
        messages.error(request, "Choose Approve or Reject; a reason has at most 1000 "
                                "characters.")
        return redirect(back)
    if form.cleaned_data["next"] == "approvals":
        back = reverse("console:approvals", args=[request.org.slug])
    approve = form.cleaned_data["decision"] == "approve"
    tool = f"{approval.tool_server}/{approval.tool_name}"
    try:
        services.decide_approval(actor=request.principal, approval=approval, approve=approve,
                                 reason=form.cleaned_data["reason"])
    except StationError as exc:
        messages.error(request, exc.detail)
    else:
        if approve:
            messages.success(request, f"Approved the call to {tool}; the run resumes.")
        else:
            messages.success(request, f"Rejected the call to {tool}; the run ends as failed.")
    return redirect(back)


# --- the run list ----------------------------------------------------------------------------


class RunFilterForm(forms.Form):
    environment = forms.ChoiceField(required=False)
    agent = forms.ChoiceField(required=False)
    status = forms.ChoiceField(required=False, choices=[("", "Any status"), *Run.STATUSES])
    trigger = forms.ChoiceField(required=False, choices=[("", "Any trigger"), *Run.TRIGGERS])

    def __init__(self, *args: Any, environments: list[Environment], agents: list[Agent],
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.environments = {env.slug: env for env in environments}
        self.agents = {str(agent.pk): agent for agent in agents}
        env_field, agent_field = self.fields["environment"], self.fields["agent"]
        assert isinstance(env_field, forms.ChoiceField)
        assert isinstance(agent_field, forms.ChoiceField)
        env_field.choices = [("", "All environments"),
                             *((env.slug, env.name) for env in environments)]
        agent_field.choices = [("", "Any agent"), *(
            (str(agent.pk), f"{agent.name} ({agent.environment.slug})") for agent in agents)]

    def clean_environment(self) -> Environment | None:
        return self.environments.get(self.cleaned_data.get("environment") or "")

    def clean_agent(self) -> Agent | None:
        return self.agents.get(self.cleaned_data.get("agent") or "")


@org_view("runs.read")
def run_list(request: OrgRequest) -> HttpResponse:
    environments = environments_with(request, "runs.read")
    agents = list(Agent.objects.filter(environment__in=environments)
                  .select_related("environment").order_by("name", "environment__created_at"))
    form = RunFilterForm(request.GET or None, environments=environments, agents=agents)
    filters = form.cleaned_data if form.is_bound and form.is_valid() else {}
    env = filters.get("environment")
    agent = filters.get("agent")
    runs = selectors.select_runs([env] if env else environments,
                                 agent_id=agent.pk if agent else None,
                                 status=filters.get("status") or None,
                                 trigger=filters.get("trigger") or None)
    page = Paginator(runs, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "console/runs/list.html", {
        "form": form,
        "page": page,
        "filtered": bool(filters and any(filters.values())),
        "query": query.urlencode(),
        "can_start": bool(environments_with(request, "agents.run")),
        "start_env": env,
    })


# --- starting a run --------------------------------------------------------------------------


class StartRunForm(forms.Form):
    agent = forms.ChoiceField(help_text="Published agents of this environment; the run uses "
                                        "the latest published version.")
    input = forms.CharField(
        initial="{}", label="Input (JSON)",
        help_text='A JSON value checked against the agent\'s input schema, e.g. '
                  '{"message": "What time is it in Paris?"}.',
        widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false", "class": "mono"}))

    def __init__(self, *args: Any, agents: list[Agent], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.agents = {str(agent.pk): agent for agent in agents}
        agent_field = self.fields["agent"]
        assert isinstance(agent_field, forms.ChoiceField)
        agent_field.choices = [(str(agent.pk), f"{agent.name} (v{agent.latest_version})")
                               for agent in agents]

    def clean_agent(self) -> Agent:
        return self.agents[self.cleaned_data["agent"]]

    def clean_input(self) -> Any:
        text = self.cleaned_data["input"].strip() or "{}"
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(
                f"Not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}).") from exc

    def add_input_errors(self, exc: StationError) -> None:
        """The service keys schema problems by JSON path (`input.$.customer.email`): show
        them all on the input field, each with its path."""
        if not exc.errors:
            self.add_error(None, exc.detail)
            return
        for key, problems in exc.errors.items():
            for problem in problems:
                if key == "input":
                    self.add_error("input", problem)
                elif key.startswith("input."):
                    self.add_error("input", f"{key.removeprefix('input.')}: {problem}")
                else:
                    self.add_error(key if key in self.fields else None, problem)


@never_cache
@org_view("agents.run")
def run_new(request: OrgRequest) -> HttpResponse:
    environments = environments_with(request, "agents.run")
    env = selected_environment(request, environments)
    if env is None:
        return refused_in_every_environment(request, "agents.run")
    agents = list(Agent.objects.filter(environment=env, latest_version__gt=0)
                  .select_related("environment").order_by("name"))
    wanted = request.GET.get("agent")
    initial = {"agent": wanted} if wanted in {str(a.pk) for a in agents} else {}
    form = StartRunForm(request.POST or None, agents=agents, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            run, _created = services.start_run(
                actor=request.principal, agent=form.cleaned_data["agent"],
                input=form.cleaned_data["input"], trigger="console")
        except InvalidInput as exc:
            form.add_input_errors(exc)
        except StationError as exc:
            add_service_error(form, exc)
        else:
            messages.success(request, f"Run of “{run.agent.name}” v{run.version.number} "
                                      "queued.")
            return redirect(run_url(request, run))
    return render(request, "console/runs/new.html", {
        "form": form, "env": env, "environments": environments, "current_env": env,
        "agents": agents,
    })
