"""Roles: built-in ones shown read-only; the org's custom roles created, edited and deleted
through `tenants.services` (roles.manage)."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render

from frontend.access import OrgRequest, org_view
from frontend.forms import CustomRoleForm, add_service_error
from station.core.errors import StationError
from tenants import roles, services
from tenants.authz import has_permission
from tenants.permissions import PERMISSIONS


@org_view("roles.read")
def role_list(request: OrgRequest) -> HttpResponse:
    listed = [
        {
            "name": role.name,
            "description": role.description,
            "built_in": role.built_in,
            "permissions": [(p, PERMISSIONS[p]) for p in PERMISSIONS if p in role.permissions],
            "count": len(role.permissions),
        }
        for role in roles.list_roles(request.org)
    ]
    return render(request, "console/roles/list.html", {
        "roles": listed, "total_permissions": len(PERMISSIONS),
        "can_manage": has_permission(request.principal, "roles.manage", request.org),
    })


@org_view("roles.manage")
def role_create(request: OrgRequest) -> HttpResponse:
    form = CustomRoleForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            role = services.create_custom_role(
                actor=request.principal, org=request.org, name=form.cleaned_data["name"],
                description=form.cleaned_data["description"], permissions=form.permissions())
        except StationError as exc:
            add_service_error(form, exc)
        else:
            messages.success(request, f"Role “{role.name}” created. Assign it on the members "
                                      "page or to an API key.")
            return redirect("console:roles", org_slug=request.org.slug)
    return render(request, "console/roles/form.html", {"form": form, "role": None})


def _custom_role(request: OrgRequest, role_name: str) -> roles.RoleInfo:
    role = roles.get_role(request.org, role_name)
    if role is None or role.built_in:
        raise Http404("No such custom role.")
    return role


@org_view("roles.manage")
def role_edit(request: OrgRequest, role_name: str) -> HttpResponse:
    role = _custom_role(request, role_name)
    form = CustomRoleForm(request.POST or None, editing=True,
                          initial={"description": role.description},
                          initial_permissions=role.permissions)
    if request.method == "POST" and form.is_valid():
        try:
            services.update_custom_role(
                actor=request.principal, org=request.org, name=role.name,
                description=form.cleaned_data["description"], permissions=form.permissions())
        except StationError as exc:
            add_service_error(form, exc)
        else:
            messages.success(request, f"Role “{role.name}” saved. Its members and keys have "
                                      "the new permissions from their next request.")
            return redirect("console:roles", org_slug=request.org.slug)
    return render(request, "console/roles/form.html", {"form": form, "role": role})


@org_view("roles.manage")
def role_delete(request: OrgRequest, role_name: str) -> HttpResponse:
    role = _custom_role(request, role_name)
    if request.method == "POST":
        try:
            services.delete_custom_role(actor=request.principal, org=request.org, name=role.name)
        except StationError as exc:
            messages.error(request, exc.detail)
        else:
            messages.success(request, f"Role “{role.name}” deleted.")
        return redirect("console:roles", org_slug=request.org.slug)
    return render(request, "console/confirm.html", {
        "title": f"Delete the role “{role.name}”?",
        "body": "Only a role that no member, environment narrowing, API key or IdP group "
                "mapping uses can be deleted.",
        "confirm_label": "Delete role",
        "danger": True,
        "cancel_url": "console:roles",
    })
