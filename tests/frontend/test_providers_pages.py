"""Model providers in the console: list per environment with scripted connections labelled,
add/edit/delete through the services, a pasted key refused and never rendered back, and
narrowed members refused."""

from __future__ import annotations

from typing import Any

from django.urls import reverse

from station.providers import services
from station.providers.models import ModelProvider
from station.vault import services as vault
from tenants import services as tenant_services
from tenants.models import Environment, Membership
from tests.fixtures import SYSTEM

PLAINTEXT = "sk-proj-console-PASTED-canary-31337"


def url(name: str, fx: Any, *args: object) -> str:
    return reverse(f"console:{name}", args=[fx.org.slug, *args])


def _form(**overrides: str) -> dict[str, str]:
    return {"name": "openai", "kind": "openai", "base_url": "https://api.openai.com/v1",
            "api_key": "${secret:OPENAI_API_KEY}", "timeout_seconds": "60",
            "max_retries": "2", **overrides}


def _secret(fx: Any, slug: str = "staging") -> None:
    with fx.scope():
        vault.set_secret(actor=SYSTEM, environment=Environment.objects.get(slug=slug),
                         name="OPENAI_API_KEY", value="sk-in-the-vault")


def test_nav_list_and_scripted_label(login, org_a) -> None:
    with org_a.scope():
        staging = Environment.objects.get(slug="staging")
        services.create_provider(actor=SYSTEM, environment=staging, name="demo",
                                 kind="scripted")
    page = login(org_a.owner).get(url("providers", org_a) + "?env=staging").content.decode()
    assert ">Model providers</a>" in page
    assert 'data-name="demo"' in page and "scripted · demo" in page
    empty = login(org_a.owner).get(url("providers", org_a) + "?env=prod").content.decode()
    assert "No model providers in" in empty


def test_create_edit_delete(login, org_a) -> None:
    _secret(org_a)
    client = login(org_a.owner)
    response = client.post(url("providers-new", org_a) + "?env=staging", _form())
    assert response.status_code == 302
    with org_a.scope():
        provider = ModelProvider.objects.get(name="openai")
        assert provider.api_key == "${secret:OPENAI_API_KEY}"
    edit = client.get(url("providers-edit", org_a, provider.pk))
    assert "${secret:OPENAI_API_KEY}" in edit.content.decode()
    assert client.post(url("providers-edit", org_a, provider.pk),
                       _form(max_retries="4")).status_code == 302
    with org_a.scope():
        provider.refresh_from_db()
        assert provider.max_retries == 4 and provider.name == "openai"
    assert client.post(url("providers-delete", org_a, provider.pk)).status_code == 302
    with org_a.scope():
        assert not ModelProvider.objects.exists()


def test_a_pasted_key_is_refused_and_never_rendered_back(login, org_a) -> None:
    client = login(org_a.owner)
    response = client.post(url("providers-new", org_a) + "?env=staging",
                           _form(api_key=PLAINTEXT))
    page = response.content.decode()
    assert response.status_code == 200
    assert "Do not paste an API key" in page
    assert PLAINTEXT not in page
    too_long = client.post(url("providers-new", org_a) + "?env=staging",
                           _form(api_key=PLAINTEXT * 10))
    assert PLAINTEXT not in too_long.content.decode()
    with org_a.scope():
        assert not ModelProvider.objects.exists()


def test_scripted_form_ignores_the_hidden_api_fields(login, org_a) -> None:
    client = login(org_a.owner)
    response = client.post(url("providers-new", org_a) + "?env=staging",
                           _form(name="demo", kind="scripted"))
    assert response.status_code == 302
    with org_a.scope():
        demo = ModelProvider.objects.get(name="demo")
    assert (demo.kind, demo.api_key, demo.base_url) == ("scripted", "", "")


def test_missing_secret_is_shown_on_the_field(login, org_a) -> None:
    page = login(org_a.owner).post(url("providers-new", org_a) + "?env=staging",
                                   _form()).content.decode()
    assert "which does not exist in staging" in page
    assert "${secret:OPENAI_API_KEY}" in page  # a reference is fine to show again


def test_member_narrowed_in_an_environment_is_refused_there(login, org_a, member) -> None:
    user = member("dev@acme.example", "developer")
    with org_a.scope():
        prod = Environment.objects.get(slug="prod")
        tenant_services.set_environment_role(
            actor=SYSTEM, membership=Membership.objects.get(user=user), environment=prod,
            role="viewer")
        provider = services.create_provider(actor=SYSTEM, environment=prod, name="demo",
                                            kind="scripted")
    client = login(user)
    assert client.get(url("providers", org_a) + "?env=prod").status_code == 200
    assert client.post(url("providers-edit", org_a, provider.pk),
                       _form(kind="scripted")).status_code == 403
    assert client.post(url("providers-delete", org_a, provider.pk)).status_code == 403
    with org_a.scope():
        assert ModelProvider.objects.filter(pk=provider.pk).exists()
