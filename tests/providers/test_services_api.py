"""Provider connections through their services and `/api/v1/providers`: validation with field
errors, plaintext keys refused and never stored or echoed, references checked, permissions per
environment, audit, and deletion refused while agents use a connection."""

from __future__ import annotations

from typing import Any

import pytest

from audit.models import AuditEvent
from station.core.errors import AccessDenied, Conflict, InvalidInput
from station.providers import services
from station.providers.models import ModelProvider
from station.vault import services as vault
from tenants import services as tenant_services
from tenants.models import Environment, Membership
from tests.fixtures import SYSTEM, OrgFixture

pytestmark = pytest.mark.django_db

PLAINTEXT = "sk-proj-PASTED-canary-0123456789abcdef"


def env(slug: str) -> Environment:
    return Environment.objects.select_related("organization").get(slug=slug)


@pytest.fixture
def org(org_a: OrgFixture) -> OrgFixture:
    with org_a.scope():
        vault.set_secret(actor=SYSTEM, environment=env("staging"), name="OPENAI_API_KEY",
                         value="sk-real-value-in-the-vault")
        vault.set_variable(actor=SYSTEM, environment=env("staging"), name="LLM_HOST",
                           value="vllm.internal:8000")
    return org_a


def create(slug: str = "staging", name: str = "openai", **config: Any) -> ModelProvider:
    config = {"kind": "openai", "api_key": "${secret:OPENAI_API_KEY}", **config}
    return services.create_provider(actor=SYSTEM, environment=env(slug), name=name, **config)


def _everything_stored(org: OrgFixture) -> str:
    with org.scope():
        rows = list(ModelProvider.objects.values())
        events = list(AuditEvent.objects.values("changes"))
    return repr(rows) + repr(events)


def test_create_stores_references_and_audits(org: OrgFixture) -> None:
    with org.scope():
        provider = create(base_url="http://${var:LLM_HOST}/v1", timeout_seconds=30)
        assert (provider.kind, provider.api_key, provider.base_url, provider.timeout_seconds,
                provider.max_retries) == ("openai", "${secret:OPENAI_API_KEY}",
                                          "http://${var:LLM_HOST}/v1", 30, 2)
        event = AuditEvent.objects.get(action="provider.created")
        assert event.target_id == str(provider.pk)
        assert event.changes["api_key"] == "${secret:OPENAI_API_KEY}"


@pytest.mark.parametrize(("config", "field", "message"), [
    ({"kind": "gemini"}, "kind", "Choose one of"),
    ({"api_key": PLAINTEXT}, "api_key", "Do not paste an API key"),
    ({"api_key": "Bearer ${secret:OPENAI_API_KEY}"}, "api_key", "exactly one reference"),
    ({"api_key": "${var:LLM_HOST}"}, "api_key", "exactly one reference"),
    ({"api_key": "${secret:NOPE}"}, "api_key", "'NOPE', which does not exist in staging"),
    ({"base_url": "ftp://example.com"}, "base_url", "http(s) URL"),
    ({"base_url": "localhost:8000/v1"}, "base_url", "http(s) URL"),
    ({"base_url": "http://${vault:X}/v1"}, "base_url", "Bad reference"),
    ({"base_url": "http://${var:MISSING}/v1"}, "base_url", "variable 'MISSING'"),
    ({"timeout_seconds": 0}, "timeout_seconds", "from 1 to 600"),
    ({"max_retries": 11}, "max_retries", "from 0 to 10"),
    ({"max_retries": True}, "max_retries", "from 0 to 10"),
    ({"kind": "scripted"}, "api_key", "scripted connection calls no API"),
])
def test_invalid_settings_name_the_field(org: OrgFixture, config: dict[str, Any], field: str,
                                         message: str) -> None:
    with org.scope(), pytest.raises(InvalidInput) as exc:
        create(**config)
    assert any(message in m for m in exc.value.errors[field]), exc.value.errors
    assert PLAINTEXT not in str(exc.value) and PLAINTEXT not in repr(exc.value.errors)
    with org.scope():
        assert not ModelProvider.objects.exists()


def test_names_scripted_and_a_base_url_from_a_variable(org: OrgFixture) -> None:
    with org.scope():
        with pytest.raises(InvalidInput) as exc:
            create(name="Open_AI")
        assert "lowercase" in exc.value.errors["name"][0]
        assert create(name="demo", kind="scripted", api_key="").api_key == ""
        vault.set_variable(actor=SYSTEM, environment=env("staging"), name="LLM_URL",
                           value="http://ollama:11434/v1")
        assert create(name="local", base_url="${var:LLM_URL}").base_url == "${var:LLM_URL}"
        with pytest.raises(Conflict):
            create(name="demo", kind="scripted", api_key="")


def test_update_diffs_and_name_is_fixed(org: OrgFixture) -> None:
    with org.scope():
        provider = create()
        same = services.update_provider(actor=SYSTEM, provider=provider, max_retries=2,
                                        name="renamed")
        assert same.name == "openai"
        assert not AuditEvent.objects.filter(action="provider.updated").exists()
        services.update_provider(actor=SYSTEM, provider=provider, kind="anthropic",
                                 base_url="https://api.anthropic.com")
        event = AuditEvent.objects.get(action="provider.updated")
        assert set(event.changes) == {"kind", "base_url"}
        with pytest.raises(InvalidInput):
            services.update_provider(actor=SYSTEM, provider=provider, api_key=PLAINTEXT)
        provider.refresh_from_db()
        assert provider.api_key == "${secret:OPENAI_API_KEY}"


def test_delete_is_refused_while_an_agent_uses_the_connection(org: OrgFixture) -> None:
    from station.agents.models import Agent

    with org.scope():
        provider = create()
        Agent.objects.create(environment=env("staging"), name="bot", provider="openai",
                             model="gpt-test")
        with pytest.raises(Conflict, match="bot"):
            services.delete_provider(actor=SYSTEM, provider=provider)
        Agent.objects.filter(name="bot").delete()
        services.delete_provider(actor=SYSTEM, provider=provider)
        assert not ModelProvider.objects.exists()
        assert AuditEvent.objects.filter(action="provider.deleted").count() == 1


def test_writes_need_agents_write_in_that_environment(org: OrgFixture) -> None:
    from tenants.authz import Principal

    membership = org.add_member("dev@acme.example", "developer")
    with org.scope():
        tenant_services.set_environment_role(actor=SYSTEM, membership=membership,
                                             environment=env("prod"), role="viewer")
        user = Principal.for_user(Membership.objects.get(pk=membership.pk).user)
        vault.set_secret(actor=SYSTEM, environment=env("prod"), name="OPENAI_API_KEY",
                         value="x")
        with pytest.raises(AccessDenied):
            services.create_provider(actor=user, environment=env("prod"), name="openai",
                                     kind="scripted")
        assert services.create_provider(actor=user, environment=env("staging"), name="o",
                                        kind="scripted")


# --- API ------------------------------------------------------------------------------------


def test_api_create_list_retrieve_update_delete(org: OrgFixture) -> None:
    client = org.client("developer", created_by=org.owner)
    response = client.post("/api/v1/providers", {
        "environment": "staging", "name": "openai", "kind": "openai",
        "base_url": "https://api.openai.com/v1", "api_key": "${secret:OPENAI_API_KEY}"},
        format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["api_key"] == "${secret:OPENAI_API_KEY}" and body["scripted"] is False
    assert body["environment"] == "staging" and body["timeout_seconds"] == 60
    pk = body["id"]
    demo = client.post("/api/v1/providers", {"environment": "staging", "name": "demo",
                                             "kind": "scripted"}, format="json").json()
    assert demo["scripted"] is True

    listed = client.get("/api/v1/providers?environment=staging").json()["results"]
    assert [p["name"] for p in listed] == ["demo", "openai"]
    assert client.get("/api/v1/providers?environment=prod").json()["results"] == []
    assert client.get("/api/v1/providers?environment=nope").status_code == 422
    assert client.get(f"/api/v1/providers/{pk}").json()["name"] == "openai"

    patched = client.patch(f"/api/v1/providers/{pk}", {"max_retries": 5}, format="json")
    assert patched.status_code == 200 and patched.json()["max_retries"] == 5
    assert client.delete(f"/api/v1/providers/{pk}").status_code == 204
    assert client.get(f"/api/v1/providers/{pk}").status_code == 404


def test_api_refuses_a_pasted_key_without_echoing_it(org: OrgFixture) -> None:
    client = org.client("owner")
    response = client.post("/api/v1/providers", {
        "environment": "staging", "name": "openai", "kind": "openai", "api_key": PLAINTEXT},
        format="json")
    assert response.status_code == 422
    problem = response.json()
    assert problem["errors"][0]["field"] == "api_key"
    assert "vault" in problem["errors"][0]["message"]
    assert PLAINTEXT not in response.content.decode()
    assert PLAINTEXT not in _everything_stored(org)


def test_viewer_reads_but_cannot_write(org: OrgFixture) -> None:
    with org.scope():
        provider = create()
    viewer = org.client("viewer")
    assert viewer.get(f"/api/v1/providers/{provider.pk}").status_code == 200
    assert viewer.patch(f"/api/v1/providers/{provider.pk}", {"max_retries": 1},
                        format="json").status_code == 403
    assert viewer.post("/api/v1/providers", {"environment": "staging", "name": "x",
                                             "kind": "scripted"}, format="json"
                       ).status_code == 403


def test_environment_bound_key_sees_only_its_environment(org: OrgFixture) -> None:
    with org.scope():
        create()
        vault.set_secret(actor=SYSTEM, environment=env("dev"), name="OPENAI_API_KEY",
                         value="x")
        dev = create(slug="dev")
    client = org.client("developer", env="dev", created_by=org.owner)
    assert [p["id"] for p in client.get("/api/v1/providers").json()["results"]] == [
        str(dev.pk)]
    refused = client.post("/api/v1/providers", {"environment": "staging", "name": "x",
                                                "kind": "scripted"}, format="json")
    assert refused.status_code == 422


def test_openapi_documents_the_providers_endpoints(org: OrgFixture) -> None:
    schema = org.client("owner").get("/api/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200, schema.status_code
    text = schema.content.decode()
    assert "/api/v1/providers" in text and "${secret:NAME}" in text
