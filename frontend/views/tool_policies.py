"""Console page for tool policies, per environment: list, add (or change) and remove."""

from __future__ import annotations

import uuid

from django import forms
from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from frontend.access import OrgRequest, org_view, refused_in_environment, selected_environment
from frontend.forms import add_service_error
from station.core.errors import StationError
from station.tools import policies
from station.tools.models import McpServer, ToolPolicy
from tenants.authz import has_permission
from tenants.models import Environment


class PolicyForm(forms.Form):
    tool = forms.CharField(max_length=300, label="Tool",
                           help_text="server/tool, or server/* for every tool of a server.",
                           widget=forms.TextInput(attrs={"spellcheck": "false",
                                                         "list": "policy-tool-options"}))
    effect = forms.ChoiceField(choices=ToolPolicy.EFFECTS, initial=ToolPolicy.REQUIRE_APPROVAL)
    note = forms.CharField(max_length=500, required=False)


def _environments(request: OrgRequest) -> list[Environment]:
    return [env for env in Environment.objects.order_by("created_at")
            if any(has_permission(request.principal, p, request.org, env)
                   for p in ("tools.read", "tools.manage"))]


def _list_url(request: OrgRequest, env: Environment) -> str:
    return reverse("console:tool-policies", args=[request.org.slug]) + f"?env={env.slug}"


def _suggestions(env: Environment) -> list[str]:
    out: list[str] = []
    for server in McpServer.objects.filter(environment=env).prefetch_related("tools"):
        out.append(f"{server.name}/*")
        out += [f"{server.name}/{tool.name}" for tool in server.tools.all()
                if tool.status != "removed"]
    return out


def _page(request: OrgRequest, env: Environment | None, environments: list[Environment],
          form: PolicyForm) -> HttpResponse:
    return render(request, "console/tool_policies/list.html", {
        "environments": environments,
        "current_env": env,
        "policies": ToolPolicy.objects.filter(environment=env) if env else [],
        "can_manage": env is not None and has_permission(request.principal, "tools.manage",
                                                         request.org, env),
        "form": form,
        "suggestions": _suggestions(env) if env else [],
    })


@org_view("tools.read")
def policy_list(request: OrgRequest) -> HttpResponse:
    environments = _environments(request)
    return _page(request, selected_environment(request, environments), environments,
                 PolicyForm())


@org_view("tools.manage")
def policy_set(request: OrgRequest) -> HttpResponse:
    environments = _environments(request)
    env = selected_environment(request, environments)
    if env is None:
        raise Http404("No environment.")
    if refused := refused_in_environment(request, "tools.manage", env):
        return refused
    if request.method != "POST":
        return redirect(_list_url(request, env))
    form = PolicyForm(request.POST)
    if form.is_valid():
        try:
            policy = policies.set_policy(actor=request.principal, environment=env,
                                         tool=form.cleaned_data["tool"],
                                         effect=form.cleaned_data["effect"],
                                         note=form.cleaned_data["note"])
        except StationError as exc:
            add_service_error(form, exc)
        else:
            messages.success(request, f"Policy for {policy.tool} in {env.slug}: "
                                      f"{policy.get_effect_display().lower()}.")
            return redirect(_list_url(request, env))
    return _page(request, env, environments, form)


@org_view("tools.manage")
def policy_delete(request: OrgRequest, policy_id: uuid.UUID) -> HttpResponse:
    policy = ToolPolicy.objects.select_related("environment").filter(
        pk=policy_id, environment__in=_environments(request)).first()
    if policy is None:
        raise Http404("No such tool policy.")
    if refused := refused_in_environment(request, "tools.manage", policy.environment):
        return refused
    if request.method == "POST":
        try:
            policies.delete_policy(actor=request.principal, policy=policy)
        except StationError as exc:
            messages.error(request, exc.detail)
        else:
            messages.success(request, f"Policy for {policy.tool} removed from "
                                      f"{policy.environment.slug}.")
        return redirect(_list_url(request, policy.environment))
    return render(request, "console/confirm.html", {
        "title": f"Remove the policy for {policy.tool} in {policy.environment.slug}?",
        "body": "Agents allowed to call the tool will call it again without "
                + ("restriction." if policy.effect == "deny" else "waiting for approval."),
        "confirm_label": "Remove policy",
        "danger": True,
        "cancel_url": "console:tool-policies",
    })
