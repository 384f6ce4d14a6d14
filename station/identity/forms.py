"""The password login form, with SSO enforcement and the owners' break-glass path."""

from __future__ import annotations

from typing import Any

from allauth.account.forms import LoginForm
from django import forms
from django.http import HttpRequest, HttpResponse
from django.urls import reverse

from audit import services as audit
from station.identity.enforcement import enforcing_orgs, sso_login_path_for_email
from tenants import platform
from tenants.authz import Principal
from tenants.context import org_scope
from tenants.permissions import OWNER_ROLE


class StationLoginForm(LoginForm):
    """allauth's login form; a member of an org that enforces SSO is refused a password login
    (checked only once the password is right, so it tells nothing to a guesser). On the
    break-glass page, owners of every such org may pass, and each org audits it."""

    break_glass = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._break_glass_orgs: list[platform.OrgSummary] = []
        if self.break_glass:
            self.fields["reason"] = forms.CharField(
                max_length=500, label="Why do you need to bypass single sign-on?",
                help_text="Recorded in the audit log of each organization that enforces SSO.")

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean()
        user = getattr(self, "user", None)
        if self.errors or user is None:
            return cleaned
        blocking = enforcing_orgs(user)
        if not blocking:
            return cleaned
        if self.break_glass and all(o.role == OWNER_ROLE for o in blocking):
            self._break_glass_orgs = blocking
            return cleaned
        for org in blocking:  # each enforcing org sees the refused password sign-in
            with org_scope(org.id):
                audit.record("account.login_failed", actor=Principal.for_user(user),
                             target=user, target_label=user.email,
                             changes={"reason": "sso_required",
                                      "break_glass": self.break_glass})
        names = ", ".join(o.name for o in blocking)
        sso = reverse("identity_sso")
        hint = (" Owners can use the break-glass sign-in." if self.break_glass else "")
        raise forms.ValidationError(
            f"{names} requires single sign-on: sign in with SSO ({sso}) instead of a "
            f"password.{hint}", code="sso_required")

    def login(self, request: HttpRequest, redirect_url: str | None = None) -> HttpResponse:
        response: HttpResponse = super().login(request, redirect_url=redirect_url)
        user = getattr(self, "user", None)
        if user is not None and request.user.is_authenticated:
            for org in self._break_glass_orgs:
                with org_scope(org.id):
                    audit.record("identity.break_glass_login", actor=Principal.for_user(user),
                                 target=user, target_label=user.email,
                                 changes={"reason": self.cleaned_data.get("reason", "")})
        return response


class BreakGlassLoginForm(StationLoginForm):
    break_glass = True


class SsoEmailForm(forms.Form):
    email = forms.EmailField(label="Work email",
                             help_text="We send you to your organization's identity provider.")

    def clean_email(self) -> str:
        email: str = self.cleaned_data["email"].strip().lower()
        self.login_path = sso_login_path_for_email(email)
        if self.login_path is None:
            raise forms.ValidationError("No organization uses single sign-on for this email "
                                        "domain. Sign in with your password instead.")
        return email
