"""Org security settings (require MFA) and signing a member out everywhere."""

from __future__ import annotations

import uuid

from allauth.mfa.models import Authenticator
from django import forms
from django.contrib import messages
from django.contrib.auth import logout
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from frontend.access import OrgRequest, org_view
from frontend.forms import add_service_error
from station.accounts import services
from station.core.errors import StationError
from tenants.models import Membership


class SecurityForm(forms.Form):
    require_mfa = forms.BooleanField(
        required=False, label="Require two-factor authentication",
        help_text="Members without an authenticator app are sent to set one up before they "
                  "can open this organization's pages. API keys are not affected; members "
                  "signed in through this organization's single sign-on are left to the IdP.")


@org_view("org.manage")
def org_security(request: OrgRequest) -> HttpResponse:
    form = SecurityForm(request.POST or None, initial={"require_mfa": request.org.require_mfa})
    if request.method == "POST" and form.is_valid():
        try:
            services.set_require_mfa(actor=request.principal, org=request.org,
                                     required=form.cleaned_data["require_mfa"])
        except StationError as exc:
            add_service_error(form, exc)
        else:
            messages.success(request, "Two-factor authentication is now "
                             + ("required." if request.org.require_mfa else "optional."))
            return redirect("console:security", org_slug=request.org.slug)
    members = list(Membership.objects.select_related("user").order_by("created_at"))
    enrolled = set(Authenticator.objects.filter(
        user_id__in=[m.user_id for m in members],
        type__in=[Authenticator.Type.TOTP, Authenticator.Type.WEBAUTHN],
    ).values_list("user_id", flat=True))
    return render(request, "console/security/settings.html", {
        "form": form,
        "without_mfa": [m for m in members if m.user_id not in enrolled],
    })


@org_view("members.manage")
def member_sign_out(request: OrgRequest, membership_id: uuid.UUID) -> HttpResponse:
    membership = get_object_or_404(Membership.objects.select_related("user"), pk=membership_id)
    if request.method == "POST":
        try:
            ended = services.sign_out_everywhere(actor=request.principal, membership=membership)
        except StationError as exc:
            messages.error(request, exc.detail)
        else:
            if membership.user_id == request.user.pk:
                # Our own session row is gone: end this request's session cleanly too.
                logout(request)
                return redirect("account_login")
            messages.success(request, f"{membership.user.email} was signed out everywhere "
                                      f"({ended} session{'s' if ended != 1 else ''} ended).")
        return redirect("console:members", org_slug=request.org.slug)
    return render(request, "console/confirm.html", {
        "title": f"Sign {membership.user.email} out everywhere?",
        "body": "Every browser they are signed in with (in any organization) is signed out on "
                "its next request. Their API keys keep working; revoke those separately.",
        "confirm_label": "Sign out everywhere",
        "danger": True,
        "cancel_url": "console:members",
    })
