"""Console pages for model provider connections: list per environment, add, edit, delete.

The API key field takes a `${secret:NAME}` reference only; a pasted key is refused by the
service and never rendered back into the form.
"""

from __future__ import annotations

import uuid
from typing import Any

from django import forms
from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache

from frontend.access import (
    OrgRequest,
    org_view,
    refused_in_environment,
    refused_in_every_environment,
    selected_environment,
)
from frontend.forms import add_service_error
from station.core.errors import StationError
from station.providers import services
from station.providers.models import ModelProvider
from station.vault.models import Secret, Variable
from tenants.authz import has_permission
from tenants.models import Environment


class ProviderForm(forms.Form):
    name = forms.CharField(max_length=63, help_text="What agents call it, e.g. openai. "
                                                    "Lowercase letters, digits and hyphens.")
    kind = forms.ChoiceField(choices=ModelProvider.KINDS, widget=forms.RadioSelect,
                             initial=ModelProvider.OPENAI)
    base_url = forms.CharField(
        max_length=2000, required=False, label="Base URL",
        help_text="Blank for the vendor's default. OpenAI-compatible servers: the API root "
                  "with /v1, e.g. http://vllm.internal:8000/v1 or http://ollama:11434/v1. "
                  "May use ${var:NAME}.",
        widget=forms.TextInput(attrs={"spellcheck": "false"}))
    api_key = forms.CharField(
        max_length=200, required=False, label="API key (secret reference)",
        help_text="${secret:NAME} of a secret in this environment — never the key itself.",
        widget=forms.TextInput(attrs={"spellcheck": "false", "autocomplete": "off",
                                      "placeholder": "${secret:OPENAI_API_KEY}"}))
    timeout_seconds = forms.IntegerField(min_value=1, max_value=services.MAX_TIMEOUT_SECONDS,
                                         initial=60, label="Timeout (seconds)",
                                         help_text="Per model call.")
    max_retries = forms.IntegerField(min_value=0, max_value=services.MAX_RETRIES, initial=2,
                                     help_text="On rate limits, server errors and timeouts, "
                                               "with backoff.")

    CONFIG = ("kind", "base_url", "api_key", "timeout_seconds", "max_retries")

    def __init__(self, *args: Any, editing: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if editing:
            self.fields["name"].disabled = True
            self.fields["name"].help_text = "The name cannot change: agents refer to it."

    def config(self) -> dict[str, Any]:
        config = {key: self.cleaned_data[key] for key in self.CONFIG}
        if config["kind"] == ModelProvider.SCRIPTED:
            # The page hides these for a scripted connection: what they held does not apply.
            config.update(base_url="", api_key="")
        return config

    def forget_api_key(self) -> None:
        """Drop a refused API key from what the page renders back (it may be a real key)."""
        if self.is_bound:
            self.data = {**self.data, "api_key": ""}

    @staticmethod
    def initial_for(provider: ModelProvider) -> dict[str, Any]:
        return {key: getattr(provider, key) for key in ("name", *ProviderForm.CONFIG)}


def _environments(request: OrgRequest) -> list[Environment]:
    return [env for env in Environment.objects.order_by("created_at")
            if any(has_permission(request.principal, p, request.org, env)
                   for p in ("agents.read", "agents.write"))]


def _provider(request: OrgRequest, provider_id: uuid.UUID) -> ModelProvider:
    provider = ModelProvider.objects.select_related("environment").filter(
        pk=provider_id, environment__in=_environments(request)).first()
    if provider is None:
        raise Http404("No such model provider.")
    return provider


def _can_write(request: OrgRequest, env: Environment) -> bool:
    return has_permission(request.principal, "agents.write", request.org, env)


def _list_url(request: OrgRequest, env: Environment) -> str:
    return reverse("console:providers", args=[request.org.slug]) + f"?env={env.slug}"


@org_view("agents.read")
def provider_list(request: OrgRequest) -> HttpResponse:
    environments = _environments(request)
    current = selected_environment(request, environments)
    return render(request, "console/providers/list.html", {
        "environments": environments,
        "current_env": current,
        "providers": (ModelProvider.objects.filter(environment=current)
                      if current else []),
        "can_write": current is not None and _can_write(request, current),
    })


def _form_page(request: OrgRequest, form: ProviderForm, env: Environment,
               provider: ModelProvider | None) -> HttpResponse:
    if form.is_bound and not services.SECRET_REFERENCE.match(
            str(form.data.get("api_key", "")).strip()):
        form.forget_api_key()  # whatever was typed may be a real key: never echo it
    return render(request, "console/providers/form.html", {
        "form": form, "env": env, "provider": provider,
        "secrets": list(Secret.objects.filter(environment=env).order_by("name")
                        .values_list("name", flat=True)),
        "variables": list(Variable.objects.filter(environment=env).order_by("name")
                          .values_list("name", flat=True)),
    })


@never_cache
@org_view("agents.write")
def provider_create(request: OrgRequest) -> HttpResponse:
    environments = [env for env in _environments(request) if _can_write(request, env)]
    env = selected_environment(request, environments)
    if env is None:
        return refused_in_every_environment(request, "agents.write")
    form = ProviderForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            provider = services.create_provider(
                actor=request.principal, environment=env, name=form.cleaned_data["name"],
                **form.config())
        except StationError as exc:
            add_service_error(form, exc)
        else:
            messages.success(request, f"Model provider “{provider.name}” added to {env.slug}.")
            return redirect(_list_url(request, env))
    return _form_page(request, form, env, None)


@never_cache
@org_view("agents.write")
def provider_edit(request: OrgRequest, provider_id: uuid.UUID) -> HttpResponse:
    provider = _provider(request, provider_id)
    if refused := refused_in_environment(request, "agents.write", provider.environment):
        return refused
    form = ProviderForm(request.POST or None, editing=True,
                        initial=ProviderForm.initial_for(provider))
    if request.method == "POST" and form.is_valid():
        try:
            services.update_provider(actor=request.principal, provider=provider,
                                     **form.config())
        except StationError as exc:
            add_service_error(form, exc)
        else:
            messages.success(request, f"Model provider “{provider.name}” saved.")
            return redirect(_list_url(request, provider.environment))
    return _form_page(request, form, provider.environment, provider)


@org_view("agents.write")
def provider_delete(request: OrgRequest, provider_id: uuid.UUID) -> HttpResponse:
    provider = _provider(request, provider_id)
    if refused := refused_in_environment(request, "agents.write", provider.environment):
        return refused
    if request.method == "POST":
        try:
            services.delete_provider(actor=request.principal, provider=provider)
        except StationError as exc:
            messages.error(request, exc.detail)
        else:
            messages.success(request, f"Model provider “{provider.name}” deleted from "
                                      f"{provider.environment.slug}.")
        return redirect(_list_url(request, provider.environment))
    return render(request, "console/confirm.html", {
        "title": f"Delete model provider “{provider.name}” from "
                 f"{provider.environment.slug}?",
        "body": "Agents can no longer use this connection (Station refuses while an agent "
                "names it). The secret it references stays in the vault.",
        "confirm_label": "Delete connection",
        "danger": True,
        "cancel_url": "console:providers",
    })
