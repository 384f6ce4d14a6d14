"""Secrets and variables in the console: values go in and never come back, not even after a
failed submit; per-environment tabs; narrowing is judged in the environment."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from station.vault import services
from station.vault.models import DataKey, Secret, Variable
from tenants import services as tenant_services
from tenants.models import Environment, Membership
from tests.fixtures import SYSTEM

CANARY = "canary-51f0-console-value-must-never-render"


def url(name: str, fx: Any, *args: object) -> str:
    return reverse(f"console:{name}", args=[fx.org.slug, *args])


def text(response: Any) -> str:
    return response.content.decode()


def _secret(fx: Any, env: str = "staging", name: str = "GITHUB_TOKEN",
            value: str = CANARY) -> Secret:
    with fx.scope():
        return services.set_secret(actor=SYSTEM, environment=Environment.objects.get(slug=env),
                                   name=name, value=value)


def test_nav_shows_secrets_and_variables(login, org_a) -> None:
    page = text(login(org_a.owner).get(url("environments", org_a)))
    assert ">Secrets</a>" in page and ">Variables</a>" in page
    assert ">Configuration</p>" in page


def test_create_secret_then_no_page_shows_the_value(login, org_a) -> None:
    client = login(org_a.owner)
    response = client.post(url("secrets-new", org_a),
                           {"environment": "staging", "name": "GITHUB_TOKEN", "value": CANARY},
                           follow=True)
    assert response.request["PATH_INFO"] == url("secrets", org_a)
    page = text(response)
    assert "Secret “GITHUB_TOKEN” created in staging." in page
    assert CANARY not in page
    with org_a.scope():
        secret = Secret.objects.get(name="GITHUB_TOKEN")
        assert secret.environment.slug == "staging"
    for path in (url("secrets", org_a) + "?env=staging", url("secrets-detail", org_a, secret.pk),
                 url("secrets-delete", org_a, secret.pk), url("audit", org_a)):
        assert CANARY not in text(client.get(path))


def test_failed_create_shows_field_errors_and_never_echoes_the_value(login, org_a) -> None:
    client = login(org_a.owner)
    response = client.post(url("secrets-new", org_a),
                           {"environment": "staging", "name": "bad name", "value": CANARY})
    assert response.status_code == 200
    page = text(response)
    assert page.count('class="field-error"') == 1
    assert "starting with a letter" in page
    assert CANARY not in page
    assert 'type="password"' in page


def test_duplicate_secret_is_a_field_error(login, org_a) -> None:
    _secret(org_a)
    response = login(org_a.owner).post(
        url("secrets-new", org_a), {"environment": "staging", "name": "GITHUB_TOKEN",
                                    "value": "other"})
    assert response.status_code == 200
    assert "Already exists." in text(response)
    with org_a.scope():
        assert Secret.objects.get(name="GITHUB_TOKEN").current_version == 1


def test_rotate_adds_a_version_and_lists_versions(login, org_a) -> None:
    secret = _secret(org_a)
    client = login(org_a.owner)
    response = client.post(url("secrets-rotate", org_a, secret.pk), {"value": CANARY + "-v2"},
                           follow=True)
    page = text(response)
    assert "“GITHUB_TOKEN” now has version 2." in page
    assert 'data-version="2"' in page and 'data-version="1"' in page
    assert CANARY not in page
    # An empty value is refused inline, on the form, with nothing echoed.
    response = client.post(url("secrets-rotate", org_a, secret.pk), {"value": ""})
    assert response.status_code == 200
    assert 'class="field-error"' in text(response)
    with org_a.scope():
        assert Secret.objects.get(pk=secret.pk).current_version == 2


def test_detail_shows_last_reveal(login, org_a, settings) -> None:
    secret = _secret(org_a)
    settings.VAULT_REVEAL_ALLOWED = True
    with org_a.scope():
        services.reveal(environment=secret.environment, name=secret.name,
                        purpose="run 42", actor=SYSTEM)
    page = text(login(org_a.owner).get(url("secrets-detail", org_a, secret.pk)))
    assert "for run 42" in page
    assert CANARY not in page


def test_delete_secret_after_confirm(login, org_a) -> None:
    secret = _secret(org_a)
    client = login(org_a.owner)
    confirm = text(client.get(url("secrets-delete", org_a, secret.pk)))
    assert "Delete secret “GITHUB_TOKEN” from staging?" in confirm
    response = client.post(url("secrets-delete", org_a, secret.pk), follow=True)
    assert "Secret “GITHUB_TOKEN” deleted from staging." in text(response)
    with org_a.scope():
        assert not Secret.objects.exists()


def test_environment_tabs_show_one_environment_at_a_time(login, org_a) -> None:
    _secret(org_a, env="dev", name="DEV_ONLY")
    _secret(org_a, env="prod", name="PROD_ONLY")
    client = login(org_a.owner)
    prod = text(client.get(url("secrets", org_a) + "?env=prod"))
    assert "PROD_ONLY" in prod and "DEV_ONLY" not in prod
    default = text(client.get(url("secrets", org_a)))
    assert "DEV_ONLY" in default and "PROD_ONLY" not in default


def test_viewer_sees_names_but_no_write_controls(login, org_a, member) -> None:
    _secret(org_a)
    client = login(member("viewer@acme.example", "viewer"))
    page = text(client.get(url("secrets", org_a) + "?env=staging"))
    assert "GITHUB_TOKEN" in page
    assert "New secret" not in page and ">Delete</a>" not in page
    assert client.post(url("secrets-new", org_a), {"environment": "staging", "name": "X",
                                                   "value": "v"}).status_code == 403


def test_member_narrowed_in_prod_cannot_write_there(login, org_a, member) -> None:
    user = member("dev@acme.example", "developer")
    with org_a.scope():
        tenant_services.set_environment_role(
            actor=SYSTEM, membership=Membership.objects.get(user=user),
            environment=Environment.objects.get(slug="prod"), role="viewer")
    prod_secret = _secret(org_a, env="prod", name="PROD_DB")
    client = login(user)
    new_page = text(client.get(url("secrets-new", org_a)))
    assert 'value="prod"' not in new_page and 'value="staging"' in new_page
    response = client.post(url("secrets-new", org_a),
                           {"environment": "prod", "name": "MINE", "value": "v"})
    assert 'class="field-error"' in text(response)
    response = client.post(url("secrets-rotate", org_a, prod_secret.pk), {"value": "x"})
    assert response.status_code == 403
    assert "secrets.write" in text(response)
    detail = text(client.get(url("secrets-detail", org_a, prod_secret.pk)))
    assert "Save new value" not in detail and "Delete secret" not in detail
    assert client.post(url("secrets-delete", org_a, prod_secret.pk)).status_code == 403
    with org_a.scope():
        assert Secret.objects.get(pk=prod_secret.pk).current_version == 1
        assert not Secret.objects.filter(name="MINE").exists()


def test_foreign_secret_id_is_a_404(login, org_a, org_b) -> None:
    foreign = _secret(org_b)
    client = login(org_a.owner)
    for name in ("secrets-detail", "secrets-rotate", "secrets-delete"):
        assert client.get(url(name, org_a, foreign.pk)).status_code == 404
    with org_b.scope():
        assert Secret.objects.get(pk=foreign.pk).current_version == 1


# --- variables --------------------------------------------------------------------------------


def test_variable_create_edit_delete(login, org_a) -> None:
    client = login(org_a.owner)
    response = client.post(url("variables-new", org_a),
                           {"environment": "staging", "name": "API_URL", "value": "https://a"},
                           follow=True)
    page = text(response)
    assert "Variable “API_URL” set in staging." in page
    assert "https://a" in page
    with org_a.scope():
        variable = Variable.objects.get(name="API_URL")
    edit = text(client.get(url("variables-edit", org_a, variable.pk)))
    assert "https://a" in edit
    response = client.post(url("variables-edit", org_a, variable.pk), {"value": "https://b"},
                           follow=True)
    assert "https://b" in text(response)
    response = client.post(url("variables-delete", org_a, variable.pk), follow=True)
    assert "Variable “API_URL” deleted from staging." in text(response)
    with org_a.scope():
        assert not Variable.objects.exists()


@pytest.mark.parametrize("name, message", [
    ("bad name", "starting with a letter"), ("API_URL", "already exists in staging")])
def test_variable_errors_are_inline(login, org_a, name: str, message: str) -> None:
    with org_a.scope():
        services.set_variable(actor=SYSTEM, environment=Environment.objects.get(slug="staging"),
                              name="API_URL", value="x")
    response = login(org_a.owner).post(url("variables-new", org_a),
                                       {"environment": "staging", "name": name, "value": "y"})
    page = text(response)
    assert page.count('class="field-error"') == 1
    assert message in page


def test_rotate_data_key_from_the_console(login, org_a) -> None:
    _secret(org_a)
    client = login(org_a.owner)
    assert "Rotate data key" in text(client.get(url("secrets", org_a)))
    response = client.post(url("secrets-data-key", org_a), follow=True)
    assert "Data key replaced; 1 stored value re-encrypted." in text(response)
    with org_a.scope():
        assert DataKey.objects.get().version == 2
