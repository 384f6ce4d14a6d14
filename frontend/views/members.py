from __future__ import annotations

import uuid

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from frontend.access import OrgRequest, org_view
from frontend.forms import (
    InviteMemberForm,
    MemberRoleForm,
    add_service_error,
    org_role_choices,
)
from station.core.errors import StationError
from tenants import services
from tenants.authz import has_permission
from tenants.models import Membership


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
        "memberships": Membership.objects.select_related("user").order_by("created_at"),
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
    membership = get_object_or_404(Membership.objects.select_related("user"), pk=membership_id)
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
