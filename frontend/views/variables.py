"""Console pages for environment variables: plain configuration, shown and edited per
environment."""

from __future__ import annotations

import uuid

from django import forms
from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from frontend.access import OrgRequest, org_view, refused_in_environment, selected_environment
from frontend.forms import EnvironmentScopedForm, add_service_error
from station.core.errors import StationError
from station.vault import selectors, services
from station.vault.models import Variable
from tenants.authz import has_permission
from tenants.models import Environment

NAME_HELP = "Letters, digits and underscores, starting with a letter, e.g. API_BASE_URL."
VALUE_HELP = "Not secret: shown to everyone who can read variables. Use a secret for tokens."


class VariableCreateForm(EnvironmentScopedForm):
    name = forms.CharField(max_length=200, help_text=NAME_HELP)
    value = forms.CharField(required=False, strip=False, help_text=VALUE_HELP,
                            widget=forms.Textarea(attrs={"rows": 3}))


class VariableValueForm(forms.Form):
    value = forms.CharField(required=False, strip=False, help_text=VALUE_HELP,
                            widget=forms.Textarea(attrs={"rows": 3}))


def _environments(request: OrgRequest) -> list[Environment]:
    return selectors.visible_environments(request.principal, request.org.pk, "variables")


def _writable(request: OrgRequest) -> list[Environment]:
    return [env for env in _environments(request)
            if has_permission(request.principal, "variables.write", request.org, env)]


def _variable(request: OrgRequest, variable_id: uuid.UUID) -> Variable:
    variable = Variable.objects.select_related("environment").filter(
        pk=variable_id, environment__in=_environments(request)).first()
    if variable is None:
        raise Http404("No such variable.")
    return variable


def _list_url(request: OrgRequest, env: Environment) -> str:
    return reverse("console:variables", args=[request.org.slug]) + f"?env={env.slug}"


@org_view("variables.read")
def variable_list(request: OrgRequest) -> HttpResponse:
    environments = _environments(request)
    current = selected_environment(request, environments)
    return render(request, "console/variables/list.html", {
        "environments": environments,
        "current_env": current,
        "variables": Variable.objects.filter(environment=current) if current else [],
        "can_write": current is not None and has_permission(
            request.principal, "variables.write", request.org, current),
    })


@org_view("variables.write")
def variable_create(request: OrgRequest) -> HttpResponse:
    form = VariableCreateForm(request.POST or None, environments=_writable(request),
                              initial={"environment": request.GET.get("env")})
    if request.method == "POST" and form.is_valid():
        env = form.cleaned_data["environment"]
        name = form.cleaned_data["name"]
        if Variable.objects.filter(environment=env, name=name).exists():
            form.add_error("name", f"{name} already exists in {env.slug}; edit it instead.")
        else:
            try:
                services.set_variable(actor=request.principal, environment=env, name=name,
                                      value=form.cleaned_data["value"])
            except StationError as exc:
                add_service_error(form, exc)
            else:
                messages.success(request, f"Variable “{name}” set in {env.slug}.")
                return redirect(_list_url(request, env))
    return render(request, "console/variables/form.html", {"form": form})


@org_view("variables.write")
def variable_edit(request: OrgRequest, variable_id: uuid.UUID) -> HttpResponse:
    variable = _variable(request, variable_id)
    if refused := refused_in_environment(request, "variables.write", variable.environment):
        return refused
    form = VariableValueForm(request.POST or None, initial={"value": variable.value})
    if request.method == "POST" and form.is_valid():
        try:
            services.set_variable(actor=request.principal, environment=variable.environment,
                                  name=variable.name, value=form.cleaned_data["value"])
        except StationError as exc:
            add_service_error(form, exc)
        else:
            messages.success(request, f"Variable “{variable.name}” saved.")
            return redirect(_list_url(request, variable.environment))
    return render(request, "console/variables/form.html", {"form": form, "variable": variable})


@org_view("variables.write")
def variable_delete(request: OrgRequest, variable_id: uuid.UUID) -> HttpResponse:
    variable = _variable(request, variable_id)
    if refused := refused_in_environment(request, "variables.write", variable.environment):
        return refused
    if request.method == "POST":
        try:
            services.delete_variable(actor=request.principal, variable=variable)
        except StationError as exc:
            messages.error(request, exc.detail)
        else:
            messages.success(request, f"Variable “{variable.name}” deleted from "
                                      f"{variable.environment.slug}.")
        return redirect(_list_url(request, variable.environment))
    return render(request, "console/confirm.html", {
        "title": f"Delete variable “{variable.name}” from {variable.environment.slug}?",
        "body": f"Agents that reference ${{var:{variable.name}}} in "
                f"{variable.environment.slug} fail until it is set again.",
        "confirm_label": "Delete variable",
        "danger": True,
        "cancel_url": "console:variables",
    })
