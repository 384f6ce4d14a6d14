from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.contrib import messages
from django.db.models import Prefetch, QuerySet
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from frontend.access import OrgRequest, org_view
from frontend.forms import (
    EnvironmentRoleForm,
    InviteMemberForm,
    MemberRoleForm,
    add_service_error,
    org_role_choices,
)
from station.core.errors import StationError
from tenants import roles, services
from tenants.authz import effective_permissions, has_permission
from tenants.models import Environment, EnvironmentRole, Membership


def _memberships() -> QuerySet[Membership]:
    """Members with their narrowings (environment order), for the list, rows and pages."""
    return Membership.objects.select_related("user").prefetch_related(Prefetch(
        "environment_roles",
        queryset=EnvironmentRole.objects.select_related("environment")
        .order_by("environment__created_at"),
    ))


def _member_row(request: OrgRequest, membership: Membership, form: MemberRoleForm | None = None,
                status: int = 200) -> HttpResponse:
    return render(request, "console/members/_row_response.html", {
        "m": membership,
        "role_form": form,
        "can_manage": True,
        "role_choices": org_role_choices(),
    }, status=status)


@org_view("members.read")
def member_list(request: OrgRequest) -> HttpResponse:
    return render(request, "console/members/list.html", {
        "memberships": _memberships().order_by("created_at"),
        "can_manage": has_permission(request.principal, "members.manage", request.org),
        "role_choices": org_role_choices(),
    })


@org_view("members.manage")
def member_invite(request: OrgRequest) -> HttpResponse:
    form = InviteMemberForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            membership = services.invite_member(
                actor=request.principal, org=request.org,
                email=form.cleaned_data["email"], role=form.cleaned_data["role"])
        except StationError as exc:
            add_service_error(form, exc)
        else:
            messages.success(
                request, f"{membership.user.email} was added as {membership.role}. "
                         "They get an email explaining how to sign in.")
            return redirect("console:members", org_slug=request.org.slug)
    return render(request, "console/members/invite.html", {"form": form})


@org_view("members.manage")
def member_role(request: OrgRequest, membership_id: uuid.UUID) -> HttpResponse:
    """Change a role: inline from the members table with htmx, or as a plain form post."""
    membership = get_object_or_404(_memberships(), pk=membership_id)
    form = MemberRoleForm(request.POST or None, initial={"role": membership.role})
    if request.method == "POST":
        if form.is_valid():
            before = membership.role
            try:
                services.change_member_role(
                    actor=request.principal, membership=membership,
                    role=form.cleaned_data["role"])
            except StationError as exc:
                membership.role = before
                add_service_error(form, exc)
                messages.error(request, f"{membership.user.email}: {exc.detail}")
            else:
                if before != membership.role:
                    messages.success(
                        request, f"{membership.user.email} is now {membership.role}.")
                if request.htmx:
                    return _member_row(request, membership)
                return redirect("console:members", org_slug=request.org.slug)
        if request.htmx:
            # 200 so htmx swaps the row in, with the error shown inline.
            return _member_row(request, membership, form)
    return render(request, "console/members/role.html", {"m": membership, "form": form})


@org_view("members.manage")
def member_remove(request: OrgRequest, membership_id: uuid.UUID) -> HttpResponse:
    membership = get_object_or_404(Membership.objects.select_related("user"), pk=membership_id)
    if request.method == "POST":
        try:
            services.remove_member(actor=request.principal, membership=membership)
        except StationError as exc:
            messages.error(request, f"{membership.user.email}: {exc.detail}")
        else:
            messages.success(request, f"{membership.user.email} was removed.")
        return redirect("console:members", org_slug=request.org.slug)
    return render(request, "console/confirm.html", {
        "title": f"Remove {membership.user.email}?",
        "body": "They lose access to this organization immediately. API keys they created "
                "stop working for permissions they no longer hold.",
        "confirm_label": "Remove member",
        "danger": True,
        "cancel_url": "console:members",
    })


# --- per-environment narrowing ----------------------------------------------------------------


@dataclass
class EnvironmentRow:
    """One environment on a member's page: the narrower role there, if any, and whether (and
    why not) the viewer may change it."""

    environment: Environment
    role: str | None  # None: the member's org role applies in this environment
    form: EnvironmentRoleForm | None = None  # None: shown read-only
    locked: str = ""  # why a manager cannot change it here


def _environment_row(request: OrgRequest, membership: Membership, environment: Environment,
                     role: str | None, form: EnvironmentRoleForm | None = None,
                     role_choices: list[tuple[str, str]] | None = None) -> EnvironmentRow:
    row = EnvironmentRow(environment, role)
    principal = request.principal
    if not has_permission(principal, "members.manage", request.org):
        return row
    # The same rules `set_environment_role` applies, checked up front so the page offers no
    # control that can only be refused; the service still judges every post.
    if membership.user_id == request.user.pk:
        row.locked = "You cannot change your own environment roles."
    elif not has_permission(principal, "members.manage", request.org, environment):
        row.locked = f"Your own role is narrowed in {environment.slug}."
    elif not roles.permissions_of(request.org, membership.role) <= effective_permissions(
            principal, request.org, environment):
        row.locked = (f"Their role {membership.role} holds permissions you do not hold "
                      f"in {environment.slug}.")
    else:
        row.form = form or EnvironmentRoleForm(initial={"role": role or ""},
                                               role_choices=role_choices)
    return row


@org_view("members.read")
def member_detail(request: OrgRequest, membership_id: uuid.UUID) -> HttpResponse:
    """A member's org role and their role in each environment, changeable by managers."""
    membership = get_object_or_404(_memberships(), pk=membership_id)
    narrowed = {er.environment_id: er.role for er in membership.environment_roles.all()}
    choices = org_role_choices()
    rows = [_environment_row(request, membership, env, narrowed.get(env.pk), role_choices=choices)
            for env in Environment.objects.order_by("created_at")]
    return render(request, "console/members/detail.html", {
        "m": membership,
        "rows": rows,
        "can_manage": has_permission(request.principal, "members.manage", request.org),
    })


@org_view("members.manage")
def member_environment_role(request: OrgRequest, membership_id: uuid.UUID,
                            environment_id: uuid.UUID) -> HttpResponse:
    """Set or remove a member's narrower role in one environment: inline on the member's page
    with htmx, or as a plain form post. Everything is judged by `set_environment_role`."""
    membership = get_object_or_404(_memberships(), pk=membership_id)
    environment = get_object_or_404(Environment, pk=environment_id)

    def current() -> str | None:
        return (EnvironmentRole.objects.filter(membership=membership, environment=environment)
                .values_list("role", flat=True).first())

    before = current()
    form = EnvironmentRoleForm(request.POST or None, initial={"role": before or ""})
    email = membership.user.email
    if request.method == "POST":
        if form.is_valid():
            role: str | None = form.cleaned_data["role"]
            try:
                services.set_environment_role(actor=request.principal, membership=membership,
                                              environment=environment, role=role)
            except StationError as exc:
                # The service's transaction rolled back: nothing changed.
                add_service_error(form, exc)
                messages.error(request, f"{email} in {environment.slug}: {exc.detail}")
            else:
                if role != before:
                    messages.success(request, (
                        f"{email} is now {role} in {environment.slug}." if role else
                        f"{email} is no longer narrowed in {environment.slug}: their role "
                        f"{membership.role} applies there."))
                if request.htmx:
                    return _environment_row_response(
                        request, membership, environment, current())
                return redirect("console:members-detail", org_slug=request.org.slug,
                                membership_id=membership.pk)
        if request.htmx:
            # 200 so htmx swaps the row in, with the refusal shown inline.
            return _environment_row_response(request, membership, environment, before, form)
    return render(request, "console/members/environment_role.html", {
        "m": membership, "environment": environment, "role": before, "form": form})


def _environment_row_response(request: OrgRequest, membership: Membership,
                              environment: Environment, role: str | None,
                              form: EnvironmentRoleForm | None = None) -> HttpResponse:
    return render(request, "console/members/_environment_row_response.html", {
        "m": membership,
        "row": _environment_row(request, membership, environment, role, form),
    })
