"""Promote configuration names from one environment to another: pick, review, confirm."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from frontend.access import OrgRequest, org_view
from frontend.forms import add_service_error
from station.core.errors import AccessDenied, StationError
from station.envcode import services
from station.envcode.kinds import KINDS
from tenants.authz import has_permission
from tenants.models import Environment


class PromoteForm(forms.Form):
    source = forms.ChoiceField(label="From", help_text="Environment whose names are promoted")
    target = forms.ChoiceField(label="To", help_text="Environment that receives them")

    def __init__(self, *args: Any, environments: list[Environment], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices = [(env.slug, f"{env.name} ({env.slug})") for env in environments]
        for name in ("source", "target"):
            cast(forms.ChoiceField, self.fields[name]).choices = choices

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("source") and data.get("source") == data.get("target"):
            self.add_error("target", "Pick a different environment than the source.")
        return data


@org_view("variables.read")
def promote(request: OrgRequest) -> HttpResponse:
    environments = list(Environment.objects.order_by("created_at"))
    by_slug = {env.slug: env for env in environments}
    data = request.POST if request.method == "POST" else (request.GET or None)
    form = PromoteForm(data, environments=environments)
    plan = None
    status = 200
    if form.is_bound and form.is_valid():
        source = by_slug[form.cleaned_data["source"]]
        target = by_slug[form.cleaned_data["target"]]
        confirm = request.method == "POST"
        try:
            plan = services.promote(actor=request.principal, source=source, target=target,
                                    dry_run=not confirm)
        except AccessDenied as exc:
            add_service_error(form, exc)
            status = 403
        except StationError as exc:
            add_service_error(form, exc)
        else:
            if confirm:
                count = len(plan.actionable)
                if count:
                    messages.success(request, f"Promoted {count} change{'s' * (count != 1)} "
                                     f"from {source.name} to {target.name}.")
                else:
                    messages.info(request, f"{target.name} already has every name from "
                                  f"{source.name}; nothing changed.")
                url = reverse("console:promote", kwargs={"org_slug": request.org.slug})
                return redirect(f"{url}?source={source.slug}&target={target.slug}")
    can_apply = bool(plan) and plan is not None and has_permission(
        request.principal, "variables.write", request.org, plan.environment)
    return render(request, "console/promote/page.html", {
        "form": form,
        "plan": plan,
        "can_apply": can_apply,
        "kinds": [kind.label for kind in KINDS.values()],
    }, status=status)
