from __future__ import annotations

import uuid

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from frontend.access import OrgRequest, org_view
from frontend.forms import EnvironmentCreateForm, EnvironmentRenameForm, add_service_error
from station.core.errors import StationError
from tenants import services
from tenants.authz import has_permission
from tenants.models import Environment


@org_view("environments.read")
def environment_list(request: OrgRequest) -> HttpResponse:
    return render(request, "console/environments/list.html", {
        "environments": Environment.objects.order_by("created_at"),
        "can_write": has_permission(request.principal, "environments.write", request.org),
        "can_delete": has_permission(request.principal, "environments.delete", request.org),
    })


@org_view("environments.write")
def environment_create(request: OrgRequest) -> HttpResponse:
    form = EnvironmentCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            env = services.create_environment(
                actor=request.principal, org=request.org,
                slug=form.cleaned_data["slug"], name=form.cleaned_data["name"])
        except StationError as exc:
            add_service_error(form, exc)
        else:
            messages.success(request, f"Environment “{env.name}” created.")
            return redirect("console:environments", org_slug=request.org.slug)
    return render(request, "console/environments/form.html", {"form": form})


@org_view("environments.write")
def environment_rename(request: OrgRequest, env_id: uuid.UUID) -> HttpResponse:
    env = get_object_or_404(Environment.objects, pk=env_id)
    form = EnvironmentRenameForm(request.POST or None, initial={"name": env.name})
    if request.method == "POST" and form.is_valid():
        try:
            services.update_environment(
                actor=request.principal, environment=env, name=form.cleaned_data["name"])
        except StationError as exc:
            add_service_error(form, exc)
        else:
            messages.success(request, f"Environment “{env.slug}” renamed to “{env.name}”.")
            return redirect("console:environments", org_slug=request.org.slug)
    return render(request, "console/environments/form.html", {"form": form, "environment": env})


@org_view("environments.delete")
def environment_delete(request: OrgRequest, env_id: uuid.UUID) -> HttpResponse:
    env = get_object_or_404(Environment.objects, pk=env_id)
    if request.method == "POST":
        try:
            services.delete_environment(actor=request.principal, environment=env)
        except StationError as exc:
            messages.error(request, exc.detail)
        else:
            messages.success(request, f"Environment “{env.name}” deleted.")
        return redirect("console:environments", org_slug=request.org.slug)
    return render(request, "console/confirm.html", {
        "title": f"Delete environment “{env.name}”?",
        "body": "Everything that belongs to this environment is deleted with it. "
                "This cannot be undone.",
        "confirm_label": "Delete environment",
        "danger": True,
        "cancel_url": "console:environments",
    })
