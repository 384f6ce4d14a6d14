from __future__ import annotations

import uuid

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache

from frontend.access import OrgRequest, org_view
from frontend.forms import ApiKeyCreateForm, add_service_error
from station.core.errors import StationError
from tenants import services
from tenants.authz import has_permission
from tenants.models import ApiKey


@org_view("apikeys.read")
def apikey_list(request: OrgRequest) -> HttpResponse:
    return render(request, "console/apikeys/list.html", {
        "keys": ApiKey.objects.select_related("created_by", "environment"),
        "can_manage": has_permission(request.principal, "apikeys.manage", request.org),
    })


@never_cache
@org_view("apikeys.manage")
def apikey_create(request: OrgRequest) -> HttpResponse:
    form = ApiKeyCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            created = services.create_api_key(
                actor=request.principal, org=request.org, name=form.cleaned_data["name"],
                role=form.cleaned_data["role"], environment=form.cleaned_data["environment"],
                expires_at=form.expires_at())
        except StationError as exc:
            add_service_error(form, exc)
        else:
            # Shown in this response only: never stored, never put in the session or a message.
            return render(request, "console/apikeys/created.html", {
                "key": created.api_key, "plaintext": created.plaintext,
            })
    return render(request, "console/apikeys/new.html", {"form": form})


@org_view("apikeys.manage")
def apikey_revoke(request: OrgRequest, key_id: uuid.UUID) -> HttpResponse:
    key = get_object_or_404(ApiKey.objects.select_related("created_by", "environment"), pk=key_id)
    if request.method == "POST":
        try:
            services.revoke_api_key(actor=request.principal, api_key=key)
        except StationError as exc:
            messages.error(request, exc.detail)
        else:
            messages.success(request, f"API key “{key.name}” ({key.display}) revoked.")
        if request.htmx:
            return render(request, "console/apikeys/_row_response.html", {
                "key": key, "can_manage": True,
            })
        return redirect("console:apikeys", org_slug=request.org.slug)
    return render(request, "console/confirm.html", {
        "title": f"Revoke API key “{key.name}”?",
        "body": f"Requests signed with {key.display} are refused from now on. "
                "This cannot be undone.",
        "confirm_label": "Revoke key",
        "danger": True,
        "cancel_url": "console:apikeys",
    })
