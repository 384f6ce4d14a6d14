"""`build()` by kind and the worker-side `connect()`: the connection found by name, its secret
and variable references resolved through the vault (each reveal audited, refused outside the
worker), the revealed values handed back for redaction, and clear config errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from audit.models import AuditEvent
from station.core.errors import NotFound
from station.providers import registry, services
from station.providers.base import Message, ModelRequest, ProviderConfig, ProviderError
from station.providers.models import ModelProvider
from station.vault import services as vault
from station.vault.models import Secret
from station.vault.services import RevealNotAllowed
from tenants.models import Environment
from tests.fixtures import SYSTEM, OrgFixture
from tests.providers.fakes import AnthropicFake, OpenAIFake

pytestmark = pytest.mark.django_db

KEY = "sk-ant-api03-vaulted-canary-4242"
ASK = ModelRequest(model="m-1", messages=[Message("user", "hi")])


@pytest.fixture
def worker(settings: Any) -> None:
    settings.VAULT_REVEAL_ALLOWED = True  # these tests play the worker


@pytest.fixture
def fake() -> Iterator[AnthropicFake]:
    with AnthropicFake(api_key=KEY) as server:
        yield server


def staging() -> Environment:
    return Environment.objects.select_related("organization").get(slug="staging")


def _connection(org: OrgFixture, fake: AnthropicFake, **config: Any) -> ModelProvider:
    with org.scope():
        vault.set_secret(actor=SYSTEM, environment=staging(), name="ANTHROPIC_KEY", value=KEY)
        vault.set_variable(actor=SYSTEM, environment=staging(), name="LLM_ORIGIN",
                           value=fake.origin)
        return services.create_provider(
            actor=SYSTEM, environment=staging(), name="claude", kind="anthropic",
            **{"base_url": "${var:LLM_ORIGIN}", "api_key": "${secret:ANTHROPIC_KEY}",
               "max_retries": 0, **config})


def test_build_picks_the_implementation_by_kind() -> None:
    assert type(registry.build(ProviderConfig(kind="scripted"))).__name__ == "ScriptedProvider"
    assert registry.kinds() == ["anthropic", "openai", "scripted"]
    with pytest.raises(ProviderError) as exc:
        registry.build(ProviderConfig(kind="gemini"))
    assert exc.value.kind == "config" and "gemini" in str(exc.value)
    with pytest.raises(ValueError, match="twice"):
        registry.register("scripted", registry.build)


def test_connect_resolves_references_audits_and_returns_the_revealed_key(
        org_a: OrgFixture, fake: AnthropicFake, worker: None) -> None:
    _connection(org_a, fake)
    with org_a.scope():
        provider, revealed = registry.connect(staging(), "claude", actor=SYSTEM,
                                              purpose="run 123")
        event = AuditEvent.objects.filter(action="secret.revealed").latest("sequence")
    assert revealed == [KEY]
    assert event.changes["purpose"] == "run 123" and event.changes["name"] == "ANTHROPIC_KEY"
    assert provider.complete(ASK).message.content == "OK"
    assert fake.requests[0].headers["authorization"] == f"Bearer {KEY}"


def test_connect_refuses_to_reveal_outside_a_worker(org_a: OrgFixture,
                                                    fake: AnthropicFake) -> None:
    _connection(org_a, fake)
    with org_a.scope(), pytest.raises(RevealNotAllowed):
        registry.connect(staging(), "claude", actor=SYSTEM, purpose="web")


def test_unknown_connection_is_not_found_with_a_clear_message(org_a: OrgFixture) -> None:
    with org_a.scope(), pytest.raises(NotFound) as exc:
        registry.connect(staging(), "nope", actor=SYSTEM, purpose="run")
    assert "No model provider connection named 'nope' in environment staging" in str(exc.value)


def test_connections_are_per_environment(org_a: OrgFixture, fake: AnthropicFake,
                                         worker: None) -> None:
    _connection(org_a, fake)
    with org_a.scope(), pytest.raises(NotFound):
        registry.connect(Environment.objects.get(slug="prod"), "claude", actor=SYSTEM,
                         purpose="run")


def test_a_deleted_secret_is_a_config_error(org_a: OrgFixture, fake: AnthropicFake,
                                            worker: None) -> None:
    _connection(org_a, fake)
    with org_a.scope():
        vault.delete_secret(actor=SYSTEM, secret=Secret.objects.get(name="ANTHROPIC_KEY"))
        with pytest.raises(ProviderError) as exc:
            registry.connect(staging(), "claude", actor=SYSTEM, purpose="run")
    assert exc.value.kind == "config" and "ANTHROPIC_KEY" in str(exc.value)


def test_a_connection_without_a_key_is_a_config_error(org_a: OrgFixture, worker: None) -> None:
    with org_a.scope():
        services.create_provider(actor=SYSTEM, environment=staging(), name="openai",
                                 kind="openai", base_url="http://127.0.0.1:9/v1")
        with pytest.raises(ProviderError) as exc:
            registry.connect(staging(), "openai", actor=SYSTEM, purpose="run")
    assert exc.value.kind == "config" and "has no API key" in str(exc.value)


def test_a_variable_that_is_not_a_url_is_a_config_error(org_a: OrgFixture, fake: AnthropicFake,
                                                        worker: None) -> None:
    _connection(org_a, fake)
    with org_a.scope():
        vault.set_variable(actor=SYSTEM, environment=staging(), name="LLM_ORIGIN",
                           value="not a url")
        with pytest.raises(ProviderError) as exc:
            registry.connect(staging(), "claude", actor=SYSTEM, purpose="run")
    assert exc.value.kind == "config" and "not an http(s) URL" in str(exc.value)


def test_scripted_needs_no_secret_and_reveals_nothing(org_a: OrgFixture) -> None:
    with org_a.scope():
        services.create_provider(actor=SYSTEM, environment=staging(), name="demo",
                                 kind="scripted")
        provider, revealed = registry.connect(staging(), "demo", actor=SYSTEM, purpose="run")
    assert revealed == []
    response = provider.complete(ModelRequest(model="s", messages=[Message("user", "hi")],
                                              parameters={"scenario": [{"content": "hey"}]}))
    assert response.message.content == "hey"


def test_openai_connection_end_to_end(org_a: OrgFixture, worker: None) -> None:
    with OpenAIFake(api_key="sk-openai-vaulted-1") as fake, org_a.scope():
        vault.set_secret(actor=SYSTEM, environment=staging(), name="OPENAI_KEY",
                         value="sk-openai-vaulted-1")
        services.create_provider(actor=SYSTEM, environment=staging(), name="local",
                                 kind="openai", base_url=fake.base_url,
                                 api_key="${secret:OPENAI_KEY}", timeout_seconds=5)
        provider, revealed = registry.connect(staging(), "local", actor=SYSTEM, purpose="run")
        fake.push(fake.text("from the fake", prompt_tokens=3, completion_tokens=2))
        response = provider.complete(ASK)
    assert (response.message.content, response.usage.total) == ("from the fake", 5)
    assert revealed == ["sk-openai-vaulted-1"]
