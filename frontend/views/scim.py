"""SCIM provisioning tokens: create (shown once, with the base URL for the IdP), revoke."""

from __future__ import annotations

import uuid

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache

from frontend.access import OrgRequest, org_view
from frontend.forms import add_service_error
from station.core.errors import StationError
from station.scim import tokens
from station.scim.models import ScimToken


class ScimTokenForm(forms.Form):
    name = forms.CharField(max_length=200,
                           help_text="Which identity provider uses it, e.g. “Okta” or “Entra”.")


def scim_base_url() -> str:
    return f"{settings.PUBLIC_URL.rstrip('/')}/scim/v2"


@org_view("org.manage")
def scim_tokens(request: OrgRequest) -> HttpResponse:
    return render(request, "console/scim/list.html", {
        "tokens": ScimToken.objects.select_related("created_by"),
        "base_url": scim_base_url(),
        "form": ScimTokenForm(),
    })


@never_cache
@org_view("org.manage")
def scim_token_create(request: OrgRequest) -> HttpResponse:
    form = ScimTokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            created = tokens.create_scim_token(actor=request.principal, org=request.org,
                                               name=form.cleaned_data["name"])
        except StationError as exc:
            add_service_error(form, exc)
        else:
            # Shown in this response only: never stored, never put in the session or a message.
            return render(request, "console/scim/created.html", {
                "token": created.token, "plaintext": created.plaintext,
                "base_url": scim_base_url(),
            })
    return render(request, "console/scim/new.html", {"form": form})


@org_view("org.manage")
def scim_token_revoke(request: OrgRequest, token_id: uuid.UUID) -> HttpResponse:
    token = get_object_or_404(ScimToken, pk=token_id)
    if request.method == "POST":
        try:
            tokens.revoke_scim_token(actor=request.principal, token=token)
        except StationError as exc:
            messages.error(request, exc.detail)
        else:
            messages.success(request, f"SCIM token “{token.name}” ({token.display}) revoked.")
        return redirect("console:scim", org_slug=request.org.slug)
    return render(request, "console/confirm.html", {
        "title": f"Revoke SCIM token “{token.name}”?",
        "body": f"Your identity provider's requests with {token.display} are refused from now "
                "on: provisioning stops until you give it a new token. This cannot be undone.",
        "confirm_label": "Revoke token",
        "danger": True,
        "cancel_url": "console:scim",
    })
