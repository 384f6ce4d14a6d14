"""Console pages for secrets: names and metadata only. A value goes in through a password
input that is never filled back, and no page renders a value or ciphertext."""

from __future__ import annotations

import uuid

from django import forms
from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache

from frontend.access import OrgRequest, org_view, refused_in_environment, selected_environment
from frontend.forms import EnvironmentScopedForm, add_service_error
from station.core.errors import StationError
from station.vault import selectors, services
from station.vault.models import Secret
from tenants.authz import has_permission
from tenants.models import Environment

VALUE_HELP = "Stored encrypted; never shown again, not even to you."


def _value_field(label: str = "Value") -> forms.CharField:
    # render_value=False: after a failed submit the browser gets an empty input, never the
    # value it sent.
    return forms.CharField(
        label=label, strip=False, help_text=VALUE_HELP,
        widget=forms.PasswordInput(render_value=False, attrs={
            "autocomplete": "new-password", "spellcheck": "false"}))


class SecretCreateForm(EnvironmentScopedForm):
    name = forms.CharField(max_length=200, help_text="Letters, digits and underscores, starting "
                                                     "with a letter, e.g. GITHUB_TOKEN.")
    value = _value_field()


class SecretValueForm(forms.Form):
    value = _value_field("New value")


def _environments(request: OrgRequest) -> list[Environment]:
    return selectors.visible_environments(request.principal, request.org.pk, "secrets")


def _secret(request: OrgRequest, secret_id: uuid.UUID) -> Secret:
    secret = selectors.secrets_with_fingerprints().filter(
        pk=secret_id, environment__in=_environments(request)).first()
    if secret is None:
        raise Http404("No such secret.")
    return secret


def _list_url(request: OrgRequest, env: Environment) -> str:
    return reverse("console:secrets", args=[request.org.slug]) + f"?env={env.slug}"


@org_view("secrets.read")
def secret_list(request: OrgRequest) -> HttpResponse:
    environments = _environments(request)
    current = selected_environment(request, environments)
    return render(request, "console/secrets/list.html", {
        "environments": environments,
        "current_env": current,
        "secrets": selectors.secrets_with_fingerprints().filter(environment=current)
        if current else [],
        "can_write": current is not None and has_permission(
            request.principal, "secrets.write", request.org, current),
        "can_rotate_key": has_permission(request.principal, "secrets.write", request.org),
    })


@never_cache
@org_view("secrets.write")
def secret_create(request: OrgRequest) -> HttpResponse:
    environments = [env for env in _environments(request)
                    if has_permission(request.principal, "secrets.write", request.org, env)]
    form = SecretCreateForm(request.POST or None, environments=environments,
                            initial={"environment": request.GET.get("env")})
    if request.method == "POST" and form.is_valid():
        env = form.cleaned_data["environment"]
        try:
            secret = services.create_secret(
                actor=request.principal, environment=env, name=form.cleaned_data["name"],
                value=form.cleaned_data["value"])
        except StationError as exc:
            add_service_error(form, exc)
        else:
            messages.success(request, f"Secret “{secret.name}” created in {env.slug}.")
            return redirect(_list_url(request, env))
    return render(request, "console/secrets/new.html", {"form": form})


@never_cache
@org_view("secrets.read")
def secret_detail(request: OrgRequest, secret_id: uuid.UUID) -> HttpResponse:
    secret = _secret(request, secret_id)
    return _detail(request, secret, SecretValueForm())


def _detail(request: OrgRequest, secret: Secret, form: SecretValueForm,
            status: int = 200) -> HttpResponse:
    return render(request, "console/secrets/detail.html", {
        "secret": secret,
        "versions": secret.versions.all(),
        "form": form,
        "can_write": has_permission(request.principal, "secrets.write", request.org,
                                    secret.environment),
    }, status=status)


@never_cache
@org_view("secrets.write")
def secret_rotate(request: OrgRequest, secret_id: uuid.UUID) -> HttpResponse:
    secret = _secret(request, secret_id)
    if refused := refused_in_environment(request, "secrets.write", secret.environment):
        return refused
    if request.method != "POST":
        return redirect("console:secrets-detail", org_slug=request.org.slug, secret_id=secret.pk)
    form = SecretValueForm(request.POST)
    if form.is_valid():
        try:
            services.set_secret(actor=request.principal, environment=secret.environment,
                                name=secret.name, value=form.cleaned_data["value"])
        except StationError as exc:
            add_service_error(form, exc)
        else:
            secret = _secret(request, secret_id)
            messages.success(request, f"“{secret.name}” now has version "
                                      f"{secret.current_version}.")
            return redirect("console:secrets-detail", org_slug=request.org.slug,
                            secret_id=secret.pk)
    return _detail(request, secret, form)


@org_view("secrets.write")
def secret_delete(request: OrgRequest, secret_id: uuid.UUID) -> HttpResponse:
    secret = _secret(request, secret_id)
    if refused := refused_in_environment(request, "secrets.write", secret.environment):
        return refused
    if request.method == "POST":
        try:
            services.delete_secret(actor=request.principal, secret=secret)
        except StationError as exc:
            messages.error(request, exc.detail)
        else:
            messages.success(request, f"Secret “{secret.name}” deleted from "
                                      f"{secret.environment.slug}.")
        return redirect(_list_url(request, secret.environment))
    return render(request, "console/confirm.html", {
        "title": f"Delete secret “{secret.name}” from {secret.environment.slug}?",
        "body": f"All {secret.versions.count()} kept versions are destroyed. Agents that "
                f"reference ${{secret:{secret.name}}} in {secret.environment.slug} fail until "
                "it is set again. This cannot be undone.",
        "confirm_label": "Delete secret",
        "danger": True,
        "cancel_url": "console:secrets",
    })


@org_view("secrets.write")
def data_key_rotate(request: OrgRequest) -> HttpResponse:
    if request.method == "POST":
        try:
            count = services.rotate_data_key(actor=request.principal, org=request.org)
        except StationError as exc:
            messages.error(request, exc.detail)
        else:
            messages.success(request, f"Data key replaced; {count} stored "
                                      f"value{'s' if count != 1 else ''} re-encrypted.")
        return redirect("console:secrets", org_slug=request.org.slug)
    return render(request, "console/confirm.html", {
        "title": "Rotate the organization's data key?",
        "body": "A new data key is made, every stored secret version in every environment is "
                "re-encrypted under it, and the old key is destroyed, in one step. Values and "
                "references do not change.",
        "confirm_label": "Rotate data key",
        "danger": False,
        "cancel_url": "console:secrets",
    })
