"""Factories and the two-org fixture used across the suite (STYLE.md §8)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from rest_framework.test import APIClient

from tenants import services
from tenants.authz import Principal
from tenants.context import org_scope
from tenants.models import Organization, User

SYSTEM = Principal.system("tests")


@dataclass
class OrgFixture:
    org: Organization
    owner: User

    def scope(self) -> Any:
        return org_scope(self.org)

    def key(self, role: str = "owner", *, env: str | None = None,
            created_by: User | None = None, scopes: list[str] | None = None) -> str:
        """A fresh API key for this org; returns the plaintext."""
        from tenants.models import Environment

        with self.scope():
            environment = Environment.objects.get(slug=env) if env else None
            actor = Principal.for_user(created_by) if created_by else SYSTEM
            created = services.create_api_key(
                actor=actor, org=self.org, name=f"{role} key",
                role=None if scopes else role, scopes=scopes, environment=environment)
        return created.plaintext

    def client(self, role: str = "owner", **kwargs: Any) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.key(role, **kwargs)}")
        return client

    def client_for(self, plaintext: str) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
        return client

    def add_member(self, email: str, role: str) -> Any:
        """Invites `email` with `role` (as the platform); returns the Membership."""
        with self.scope():
            return services.invite_member(actor=SYSTEM, org=self.org, email=email, role=role)

    def key_object(self, plaintext: str) -> Any:
        """The ApiKey row behind a plaintext key of this org."""
        from tenants import apikeys
        from tenants.models import ApiKey

        parsed = apikeys.parse(plaintext)
        assert parsed is not None
        with self.scope():
            return ApiKey.objects.select_related("organization").get(key_id=parsed[0])


@pytest.fixture(autouse=True)
def reset_dns_resolver() -> Any:
    """Tests that verify domains install a static DNS resolver; none outlives its test."""
    yield
    from station.identity import dns

    dns.use_resolver(None)


@pytest.fixture(autouse=True)
def isolated_cache() -> Any:
    """The cache outlives a test (OIDC keys by JWKS URI, and loopback IdPs reuse ports with
    new keys; rate-limit counters): each test starts from an empty one (this process's keys
    only, see station.core.cache_backends)."""
    from django.core.cache import cache

    cache.clear()
    yield


@pytest.fixture
def fast_password_hashing(settings: Any) -> None:
    """Fixture accounts get random passwords; PBKDF2's deliberate cost buys nothing here."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def make_org(
    request: pytest.FixtureRequest, fast_password_hashing: None
) -> Callable[..., OrgFixture]:
    # Inside one rolled-back transaction by default; with committed_db, really committed.
    if "committed_db" not in request.fixturenames:
        request.getfixturevalue("db")

    def _make(slug: str, owner_email: str | None = None) -> OrgFixture:
        created = services.create_organization(
            actor=SYSTEM, slug=slug, name=slug.replace("-", " ").title(),
            owner_email=owner_email or f"owner@{slug}.example")
        return OrgFixture(created.organization, created.owner)

    return _make


@pytest.fixture
def org_a(make_org: Callable[..., OrgFixture]) -> OrgFixture:
    return make_org("acme")


@pytest.fixture
def org_b(make_org: Callable[..., OrgFixture]) -> OrgFixture:
    return make_org("globex")


@pytest.fixture
def member(org_a: OrgFixture) -> Callable[[str, str], User]:
    """Adds a member with a role to org A; returns the user."""
    def _add(email: str, role: str) -> User:
        with org_a.scope():
            m = services.invite_member(actor=SYSTEM, org=org_a.org, email=email, role=role)
        return m.user

    return _add


@dataclass
class SeededOrg:
    """An org with one object of every API-visible kind, for cross-org tests."""

    fx: OrgFixture
    objects: dict[type, list[Any]]

    def ids(self) -> set[str]:
        out = {str(self.fx.org.pk)}
        for rows in self.objects.values():
            out.update(str(row.pk) for row in rows)
        return out


def seed_org(fx: OrgFixture) -> SeededOrg:
    """One environment, member, environment role, API key, secret, variable, MCP server, tool,
    model provider, agent with a published version, tool policy, schedule, inbound and outbound
    webhooks, a webhook delivery, a run held on a tool call (with a step and the approval), a
    verified domain, an IdP group mapping, a SAML connection, a custom role, a SCIM token and
    audit events in `fx`'s org."""
    from audit.models import AuditEvent
    from station.agents import services as agents
    from station.agents.models import Agent, AgentVersion
    from station.providers import services as providers
    from station.providers.models import ModelProvider
    from station.tools import policies
    from station.tools import services as tools
    from station.tools.hashing import ToolDefinition
    from station.tools.models import McpServer, Tool, ToolPolicy
    from station.triggers import services as triggers
    from station.triggers.models import (
        InboundWebhook,
        OutboundWebhook,
        Schedule,
        WebhookDelivery,
    )
    from station.vault import services as vault
    from station.vault.models import Secret, Variable
    from tenants.models import ApiKey, CustomRole, Environment, Membership

    slug = fx.org.slug
    key = fx.key_object(fx.key("viewer"))
    membership = fx.add_member(f"viewer@{slug}.example", "viewer")
    with fx.scope():
        env = services.create_environment(actor=SYSTEM, org=fx.org, slug="qa", name="QA")
        services.create_custom_role(actor=SYSTEM, org=fx.org, name=f"{slug}-deployer",
                                    permissions=["org.read", "agents.read", "agents.run"])
        services.set_environment_role(actor=SYSTEM, membership=membership,
                                      environment=env, role="viewer")
        vault.set_secret(actor=SYSTEM, environment=env, name="SEEDED_TOKEN",
                         value=f"seeded-secret-{slug}")
        vault.set_variable(actor=SYSTEM, environment=env, name="SEEDED_HOST",
                           value=f"{slug}.example")
        server = tools.create_mcp_server(actor=SYSTEM, environment=env, name="clock",
                                         transport="stdio", command="mcp-server-time",
                                         env={"TOKEN": "${secret:SEEDED_TOKEN}"})
        tools.record_discovery(actor=SYSTEM, server=server, tools=[ToolDefinition(
            "get_current_time", "Current time", {"type": "object", "properties": {}})])
        providers.create_provider(actor=SYSTEM, environment=env, name="scripted",
                                  kind="scripted")
        agent = agents.create_agent(
            actor=SYSTEM, environment=env, name="clock-bot", provider="scripted",
            model="scripted-1", instructions="Tell the time.",
            parameters={"scenario": [{"content": "It is noon."}]},
            allowed_tools=["clock/get_current_time"],
            input_schema={"type": "object", "properties": {"question": {"type": "string"}}})
        agents.publish_agent(actor=SYSTEM, agent=agent, note="seeded")
        policies.set_policy(actor=SYSTEM, environment=env, tool="clock/*",
                            effect="require_approval")
        triggers.create_schedule(actor=SYSTEM, agent=agent, cron_expression="0 9 * * 1-5",
                                 timezone_name="Europe/Paris", input={"question": "time?"})
        triggers.create_inbound_webhook(actor=SYSTEM, agent=agent, name="seeded")
        outbound, _ = triggers.create_outbound_webhook(
            actor=SYSTEM, environment=env, agent=agent, url=f"https://{slug}.example/hook")
        from station.runs import services as runs
        from station.runs.models import ActiveRun, Run, RunStep, ToolApproval

        run, _ = runs.start_run(actor=SYSTEM, agent=agent, input={"question": "time?"})
        # Direct rows: the state a worker leaves a run in when it holds a tool call for
        # approval (tests/runs drive the real engine).
        RunStep.objects.create(run=run, sequence=1, kind="model",
                               output={"message": {"role": "assistant", "content": ""}})
        Run.objects.filter(pk=run.pk).update(status=Run.WAITING_APPROVAL)
        ActiveRun.objects.filter(run_id=run.pk).update(status=Run.WAITING_APPROVAL)
        ToolApproval.objects.create(run=run, environment=env, tool_call_id="call-1",
                                    tool_server="clock", tool_name="get_current_time")
        # Direct rows: a verified domain (verification needs DNS; tests/identity covers it),
        # a group mapping and a SAML connection.
        from django.utils import timezone

        from station.identity.models import GroupRoleMapping, SamlConnection, VerifiedDomain

        VerifiedDomain.objects.create(organization=fx.org, domain=f"{slug}.example",
                                      token=f"token-{slug}", verified_at=timezone.now())
        GroupRoleMapping.objects.create(organization=fx.org, group=f"{slug}-eng",
                                        role="developer")
        SamlConnection.objects.create(organization=fx.org,
                                      idp_entity_id=f"https://idp.{slug}.example",
                                      idp_sso_url=f"https://idp.{slug}.example/sso",
                                      idp_x509cert="seeded")
        from station.identity import oidc_secret
        from station.identity.models import OidcConnection

        oidc_connection = OidcConnection.objects.create(
            organization=fx.org, issuer=f"https://login.{slug}.example",
            client_id=f"{slug}-client",
            authorization_endpoint=f"https://login.{slug}.example/authorize",
            token_endpoint=f"https://login.{slug}.example/token",
            jwks_uri=f"https://login.{slug}.example/jwks")
        oidc_secret.seal_onto(oidc_connection, f"seeded-oidc-secret-{slug}")
        oidc_connection.save()
        from station.scim import tokens as scim_tokens
        from station.scim.models import ScimToken

        scim_tokens.create_scim_token(actor=SYSTEM, org=fx.org, name=f"{slug} IdP")
        # Direct row: deliveries are made by finished runs (tests/triggers cover that path).
        WebhookDelivery.objects.create(webhook=outbound, event="run.succeeded",
                                       payload={"event": "run.succeeded"})
        objects: dict[type, list[Any]] = {
            model: list(model.objects.all())
            for model in (Environment, Membership, ApiKey, Secret, Variable, McpServer, Tool,
                          ModelProvider, Agent, AgentVersion, ToolPolicy, Schedule,
                          InboundWebhook, OutboundWebhook, WebhookDelivery, Run, RunStep,
                          ToolApproval, VerifiedDomain, GroupRoleMapping, CustomRole,
                          ScimToken, AuditEvent)
        }
    assert key in objects[ApiKey]
    return SeededOrg(fx, objects)


@pytest.fixture
def seeded_a(org_a: OrgFixture) -> SeededOrg:
    return seed_org(org_a)


@pytest.fixture
def seeded_b(org_b: OrgFixture) -> SeededOrg:
    return seed_org(org_b)
