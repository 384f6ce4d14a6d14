"""The audit log: one event per change, none without one, a verifiable hash chain, and a
table nobody can rewrite while its triggers stand."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from django.db import DatabaseError, connection, connections, transaction

from audit import chain
from audit.models import AuditEvent
from audit.selectors import verify_current_org
from station.agents import services as agents
from station.identity import services as identity
from station.providers import services as providers
from station.providers.models import ModelProvider
from station.runs import services as runs
from station.scim import tokens as scim_tokens
from station.tools import policies
from station.tools import services as tools
from station.tools.hashing import ToolDefinition
from station.tools.models import Tool
from station.triggers import services as triggers
from station.vault import services as vault
from tenants import services
from tenants.context import org_scope
from tenants.models import ApiKey, Environment, Membership, Organization
from tests.api.routes import api_routes
from tests.fixtures import SYSTEM, OrgFixture

REQUEST_ID = "audit-test-req-0001"
CLIENT_IP = "203.0.113.7"
USER_AGENT = "audit-test/1.0"


@dataclass(frozen=True)
class Operation:
    action: str
    method: str
    template: str  # {pk} filled from the seeded objects
    body: dict[str, Any] | None
    target: str | None = None  # which seeded object {pk} refers to
    # Per-change events a summarizing operation writes before its own (bundle apply, promotion).
    also: tuple[str, ...] = ()
    setup: Callable[[OrgFixture], None] | None = None  # state the operation needs to change
    # When the event's target is not the object in the URL (a held tool call's decision is an
    # event of its run): which seeded object the event must name.
    event_target: str | None = None

    def __str__(self) -> str:
        return f"{self.action}: {self.method.upper()} {self.template}"


OPERATIONS = [
    Operation("organization.updated", "patch", "/api/v1/organization", {"name": "Acme Corp"}),
    Operation("environment.created", "post", "/api/v1/environments", {"slug": "qa", "name": "QA"}),
    Operation("environment.updated", "patch", "/api/v1/environments/{pk}", {"name": "Stage"},
              "environment"),
    Operation("environment.deleted", "delete", "/api/v1/environments/{pk}", None, "environment"),
    Operation("member.invited", "post", "/api/v1/members",
              {"email": "new@acme.example", "role": "viewer"}),
    Operation("member.role_changed", "patch", "/api/v1/members/{pk}", {"role": "developer"},
              "member"),
    Operation("member.removed", "delete", "/api/v1/members/{pk}", None, "member"),
    Operation("member.environment_role_set", "post", "/api/v1/members/{pk}/environment-role",
              {"environment": "prod", "role": "viewer"}, "member"),
    Operation("role.created", "post", "/api/v1/roles",
              {"name": "deployer", "permissions": ["org.read", "agents.run"]}),
    # Roles are addressed by name; the event names the role row.
    Operation("role.updated", "patch", "/api/v1/roles/{pk}", {"permissions": ["org.read"]},
              "custom_role", event_target="custom_role_id"),
    Operation("role.deleted", "delete", "/api/v1/roles/{pk}", None, "custom_role",
              event_target="custom_role_id"),
    Operation("apikey.created", "post", "/api/v1/api-keys",
              {"name": "ci", "scopes": ["environments.read"]}),
    Operation("apikey.revoked", "post", "/api/v1/api-keys/{pk}/revoke", None, "apikey"),
    Operation("secret.created", "post", "/api/v1/secrets",
              {"environment": "staging", "name": "NEW_TOKEN", "value": "s3cret"}),
    Operation("secret.updated", "put", "/api/v1/secrets/{pk}/value", {"value": "rotated"},
              "secret"),
    Operation("secret.deleted", "delete", "/api/v1/secrets/{pk}", None, "secret"),
    Operation("variable.set", "post", "/api/v1/variables",
              {"environment": "staging", "name": "REGION", "value": "eu-west-1"}),
    Operation("variable.set", "patch", "/api/v1/variables/{pk}", {"value": "changed"},
              "variable"),
    Operation("variable.deleted", "delete", "/api/v1/variables/{pk}", None, "variable"),
    Operation("vault.data_key_rotated", "post", "/api/v1/vault/rotate-data-key", None),
    Operation("environment.bundle_applied", "post", "/api/v1/environments/{pk}/bundle/apply",
              {"files": {"station-environment.yaml": "format_version: 1\n",
                         "variables.yaml": "REGION: eu-west-1\n"}}, "environment",
              also=("variable.set",)),
    Operation("environment.promoted", "post", "/api/v1/environments/{pk}/promotion",
              {"source": "dev"}, "environment", also=("variable.set",),
              setup=lambda org: _set_variable(org, "dev", "ONLY_IN_DEV")),
    Operation("mcp_server.created", "post", "/api/v1/mcp-servers",
              {"environment": "staging", "name": "clock", "transport": "stdio",
               "command": "mcp-server-time", "env": {"TOKEN": "${secret:TOKEN}"}}),
    Operation("mcp_server.updated", "patch", "/api/v1/mcp-servers/{pk}",
              {"description": "Clock", "args": ["--local-timezone", "UTC"]}, "mcp_server"),
    Operation("mcp_server.deleted", "delete", "/api/v1/mcp-servers/{pk}", None, "mcp_server"),
    Operation("tool.approved", "post", "/api/v1/tools/{pk}/approve", None, "tool"),
    Operation("provider.created", "post", "/api/v1/providers",
              {"environment": "staging", "name": "openai", "kind": "openai",
               "base_url": "https://llm.example/v1", "api_key": "${secret:TOKEN}"}),
    Operation("provider.updated", "patch", "/api/v1/providers/{pk}",
              {"timeout_seconds": 30, "max_retries": 4}, "provider"),
    Operation("provider.deleted", "delete", "/api/v1/providers/{pk}", None, "provider"),
    Operation("agent.created", "post", "/api/v1/agents",
              {"environment": "staging", "name": "new-bot", "provider": "scripted",
               "model": "scripted-1", "allowed_tools": ["seeded/get_current_time"]}),
    Operation("agent.updated", "patch", "/api/v1/agents/{pk}", {"description": "Tells time"},
              "agent"),
    Operation("agent.deleted", "delete", "/api/v1/agents/{pk}", None, "agent"),
    Operation("agent.published", "post", "/api/v1/agents/{pk}/publish", {"note": "first"},
              "agent"),
    Operation("agent.imported", "post", "/api/v1/agents/import",
              {"environment": "staging",
               "dotprompt": "---\nname: imported-bot\nmodel: scripted/scripted-1\n---\nHi"}),
    Operation("tool_policy.set", "post", "/api/v1/tool-policies",
              {"environment": "staging", "tool": "seeded/*", "effect": "deny"}),
    Operation("tool_policy.set", "patch", "/api/v1/tool-policies/{pk}", {"effect": "deny"},
              "tool_policy"),
    Operation("tool_policy.deleted", "delete", "/api/v1/tool-policies/{pk}", None,
              "tool_policy"),
    Operation("schedule.created", "post", "/api/v1/schedules",
              {"agent": "{agent}", "cron": "0 9 * * 1-5", "timezone": "Europe/Paris"}),
    Operation("schedule.updated", "patch", "/api/v1/schedules/{pk}", {"cron": "30 8 * * *"},
              "schedule"),
    Operation("schedule.deleted", "delete", "/api/v1/schedules/{pk}", None, "schedule"),
    Operation("run.started", "post", "/api/v1/runs", {"agent": "{run_agent}", "input": {}}),
    Operation("run.finished", "post", "/api/v1/runs/{pk}/cancel", None, "run",
              also=("run.cancel_requested",)),
    Operation("run.tool_call_approved", "post", "/api/v1/tool-approvals/{pk}/approve", {},
              "approval", event_target="held_run"),
    Operation("run.finished", "post", "/api/v1/tool-approvals/{pk}/reject",
              {"reason": "not now"}, "approval", also=("run.tool_call_rejected",),
              event_target="held_run"),
    Operation("webhook.created", "post", "/api/v1/inbound-webhooks",
              {"agent": "{agent}", "name": "from CI"}),
    Operation("webhook.updated", "patch", "/api/v1/inbound-webhooks/{pk}", {"enabled": False},
              "inbound_webhook"),
    Operation("webhook.secret_rotated", "post", "/api/v1/inbound-webhooks/{pk}/rotate-secret",
              None, "inbound_webhook"),
    Operation("webhook.deleted", "delete", "/api/v1/inbound-webhooks/{pk}", None,
              "inbound_webhook"),
    Operation("webhook.created", "post", "/api/v1/outbound-webhooks",
              {"environment": "staging", "url": "https://hooks.example.com/station"}),
    Operation("webhook.updated", "patch", "/api/v1/outbound-webhooks/{pk}",
              {"events": ["run.failed"]}, "outbound_webhook"),
    Operation("webhook.secret_rotated", "post",
              "/api/v1/outbound-webhooks/{pk}/rotate-secret", None, "outbound_webhook"),
    Operation("webhook.deleted", "delete", "/api/v1/outbound-webhooks/{pk}", None,
              "outbound_webhook"),
    Operation("identity.saml_configured", "put", "/api/v1/sso/saml", {"enforce_sso": True},
              setup=lambda org: _saml_connection(org)),
    Operation("identity.saml_removed", "delete", "/api/v1/sso/saml", None,
              setup=lambda org: _saml_connection(org)),
    Operation("identity.oidc_configured", "put", "/api/v1/sso/oidc", {"enforce_sso": True},
              setup=lambda org: _oidc_connection(org)),
    Operation("identity.oidc_removed", "delete", "/api/v1/sso/oidc", None,
              setup=lambda org: _oidc_connection(org)),
    Operation("identity.domain_added", "post", "/api/v1/sso/domains", {"domain": "new.example"}),
    Operation("identity.domain_verified", "post", "/api/v1/sso/domains/{pk}/verify", None,
              "domain", setup=lambda org: _publish_domain_token(org)),
    Operation("identity.domain_removed", "delete", "/api/v1/sso/domains/{pk}", None, "domain"),
    Operation("identity.group_mapping_set", "post", "/api/v1/sso/group-mappings",
              {"group": "engineering", "role": "developer"}),
    Operation("identity.group_mapping_deleted", "delete", "/api/v1/sso/group-mappings/{pk}",
              None, "group_mapping"),
    Operation("scim.token_created", "post", "/api/v1/scim-tokens", {"name": "Okta"}),
    Operation("scim.token_revoked", "post", "/api/v1/scim-tokens/{pk}/revoke", None,
              "scim_token"),
]
# POSTs that change nothing, so write no event.
READ_ONLY = {("post", "/api/v1/environments/{pk}/bundle/diff")}
# POSTs that only queue worker tasks: the worker's own writes are audited there
# (mcp_server.discovered, secret.revealed), the request itself changes nothing.
QUEUES_WORK = {("post", "/api/v1/mcp-servers/{pk}/discover"),
               ("post", "/api/v1/mcp-servers/{pk}/health-check")}


def _saml_connection(org: OrgFixture) -> None:
    from station.identity.models import SamlConnection

    with org.scope():
        SamlConnection.objects.create(organization=org.org, idp_entity_id="https://idp.example",
                                      idp_sso_url="https://idp.example/sso", idp_x509cert="x")


def _oidc_connection(org: OrgFixture) -> None:
    from station.identity import oidc_secret
    from station.identity.models import OidcConnection

    with org.scope():
        row = OidcConnection.objects.create(
            organization=org.org, issuer="https://login.example", client_id="c",
            authorization_endpoint="https://login.example/a",
            token_endpoint="https://login.example/t", jwks_uri="https://login.example/k")
        oidc_secret.seal_onto(row, "s3cret-value")
        row.save()


def _publish_domain_token(org: OrgFixture) -> None:
    """The DNS answer the verify call looks for (the resolver is reset after each test)."""
    from station.identity import dns
    from station.identity.models import VerifiedDomain

    with org.scope():
        row = VerifiedDomain.objects.get(domain="acme-corp.example")
    dns.use_resolver(dns.StaticResolver({row.domain: [row.txt_value]}))


def _set_variable(org: OrgFixture, env_slug: str, name: str) -> None:
    with org.scope():
        vault.set_variable(actor=SYSTEM, environment=Environment.objects.get(slug=env_slug),
                           name=name, value="x")


def test_every_mutating_route_has_an_audited_operation() -> None:
    mutating = {(r.method, r.template) for r in api_routes() if r.mutating}
    covered = {(op.method, op.template) for op in OPERATIONS} | READ_ONLY | QUEUES_WORK
    assert mutating == covered, f"add these routes to OPERATIONS: {mutating - covered}"


def _targets(org: OrgFixture) -> dict[str, Any]:
    viewer = org.add_member("viewer@acme.example", "viewer")
    key = org.key_object(org.key("viewer"))
    with org.scope():
        env = Environment.objects.get(slug="staging")
        secret = vault.set_secret(actor=SYSTEM, environment=env, name="TOKEN", value="v1")
        variable = vault.set_variable(actor=SYSTEM, environment=env, name="HOST", value="h")
        server = tools.create_mcp_server(actor=SYSTEM, environment=env, name="seeded",
                                         transport="stdio", command="mcp-server-time")
        tools.record_discovery(actor=SYSTEM, server=server,
                               tools=[ToolDefinition("get_current_time", "Current time")])
        tool = Tool.objects.get(server=server)
        ModelProvider.objects.create(environment=env, name="scripted", kind="scripted")
        spare = providers.create_provider(actor=SYSTEM, environment=env, name="spare",
                                          kind="anthropic", api_key="${secret:TOKEN}")
        agent = agents.create_agent(actor=SYSTEM, environment=env, name="seeded-bot",
                                    provider="scripted", model="scripted-1")
        policy = policies.set_policy(actor=SYSTEM, environment=env,
                                     tool="seeded/get_current_time", effect="require_approval")
        schedule = triggers.create_schedule(actor=SYSTEM, agent=agent,
                                            cron_expression="0 * * * *")
        inbound, _ = triggers.create_inbound_webhook(actor=SYSTEM, agent=agent)
        outbound, _ = triggers.create_outbound_webhook(actor=SYSTEM, environment=env,
                                                       url="https://hooks.example.com/a")
        run_agent = agents.create_agent(actor=SYSTEM, environment=env, name="run-bot",
                                        provider="scripted", model="scripted-1")
        agents.publish_agent(actor=SYSTEM, agent=run_agent)
        run, _ = runs.start_run(actor=SYSTEM, agent=run_agent, input={})
        held_run, _ = runs.start_run(actor=SYSTEM, agent=run_agent, input={})
        approval = _hold(held_run)
        domain = identity.add_domain(actor=SYSTEM, org=org.org, domain="acme-corp.example")
        group_mapping = identity.set_group_mapping(actor=SYSTEM, org=org.org, group="ops",
                                                   role="operator")
        custom_role = services.create_custom_role(actor=SYSTEM, org=org.org, name="seeded",
                                                  permissions=["org.read", "runs.read"])
        scim_token = scim_tokens.create_scim_token(actor=SYSTEM, org=org.org, name="seeded")
    return {"custom_role": custom_role.name, "custom_role_id": custom_role.pk,
            "scim_token": scim_token.token.pk,
            "domain": domain.pk, "group_mapping": group_mapping.pk,
            "run_agent": run_agent.pk, "run": run.pk, "held_run": held_run.pk,
            "approval": approval.pk,
            "environment": env.pk, "member": viewer.pk, "apikey": key.pk, "secret": secret.pk,
            "variable": variable.pk, "mcp_server": server.pk, "tool": tool.pk,
            "agent": agent.pk, "tool_policy": policy.pk, "provider": spare.pk,
            "schedule": schedule.pk, "inbound_webhook": inbound.pk,
            "outbound_webhook": outbound.pk}


def _hold(run: Any) -> Any:
    """Put a queued run where the worker leaves it on an approval-required tool call."""
    from station.runs.models import ActiveRun, Run, ToolApproval

    Run.objects.filter(pk=run.pk).update(status=Run.WAITING_APPROVAL)
    ActiveRun.objects.filter(run_id=run.pk).update(status=Run.WAITING_APPROVAL)
    return ToolApproval.objects.create(run=run, environment=run.environment,
                                       tool_call_id="call-1", tool_server="seeded",
                                       tool_name="get_current_time")


def _events(org: OrgFixture) -> list[AuditEvent]:
    with org.scope():
        return list(AuditEvent.objects.order_by("sequence"))


def _send(client: Any, op: Operation, pk: object = None, *,
          targets: dict[str, Any] | None = None, **headers: Any) -> Any:
    path = op.template.replace("{pk}", str(pk))
    call = getattr(client, op.method)
    if op.body is None:
        return call(path, **headers)
    # "{name}" as a body value stands for the id of the seeded target `name` (e.g. agent).
    body = {k: str((targets or {})[v[1:-1]]) if isinstance(v, str) and v[:1] == "{"
            and v[-1:] == "}" else v for k, v in op.body.items()}
    return call(path, body, format="json", **headers)


@pytest.mark.django_db
@pytest.mark.parametrize("op", OPERATIONS, ids=str)
def test_mutation_writes_exactly_one_event_with_actor_and_request_context(
    op: Operation, org_a: OrgFixture
) -> None:
    targets = _targets(org_a)
    if op.setup:
        op.setup(org_a)
    plaintext = org_a.key("owner")
    key = org_a.key_object(plaintext)
    before = _events(org_a)

    response = _send(
        org_a.client_for(plaintext), op, targets.get(op.target or ""), targets=targets,
        HTTP_X_REQUEST_ID=REQUEST_ID, REMOTE_ADDR=CLIENT_IP, HTTP_USER_AGENT=USER_AGENT,
    )

    assert response.status_code in {200, 201, 202, 204}, response.content
    after = _events(org_a)
    new = after[len(before):]
    assert [e.action for e in new] == [*op.also, op.action]
    event = new[-1]
    assert event.actor_type == "api_key"
    assert event.actor_id == str(key.pk)
    assert event.actor_label == key.display
    assert response["X-Request-ID"] == REQUEST_ID
    assert event.context == {"request_id": REQUEST_ID, "ip": CLIENT_IP, "user_agent": USER_AGENT}
    if op.target:
        assert event.target_id == str(targets[op.event_target or op.target])
    assert new[0].prev_hash == before[-1].hash
    assert event.sequence == before[-1].sequence + len(new)


@pytest.mark.django_db
def test_generated_request_id_is_the_one_recorded(org_a: OrgFixture) -> None:
    response = org_a.client("owner").post(
        "/api/v1/environments", {"slug": "qa", "name": "QA"}, HTTP_X_REQUEST_ID="bad id!")
    assert response.status_code == 201
    generated = response["X-Request-ID"]
    assert generated != "bad id!"
    assert _events(org_a)[-1].context["request_id"] == generated


def _snapshot(org: OrgFixture) -> dict[str, Any]:
    with org.scope():
        return {
            "org": list(Organization.objects.values()),
            "envs": list(Environment.objects.order_by("id").values()),
            "members": list(Membership.objects.order_by("id").values()),
            "keys": list(ApiKey.objects.order_by("id").values("id", "name", "revoked_at")),
            "events": list(AuditEvent.objects.order_by("id").values_list("id", flat=True)),
        }


FAILURES = [
    ("duplicate slug", "owner", "post", "/api/v1/environments", {"slug": "dev", "name": "D"}, 409),
    ("last owner removed", "owner", "delete", "/api/v1/members/{owner}", None, 409),
    ("last owner demoted", "owner", "patch", "/api/v1/members/{owner}", {"role": "viewer"}, 409),
    ("unknown role", "owner", "post", "/api/v1/members", {"email": "x@y.example",
                                                          "role": "emperor"}, 422),
    ("blank name", "owner", "patch", "/api/v1/organization", {"name": "  "}, 422),
    ("viewer writes", "viewer", "post", "/api/v1/environments", {"slug": "qa", "name": "Q"}, 403),
    ("escalating key", "admin", "post", "/api/v1/api-keys",
     {"name": "k", "scopes": ["billing.manage"]}, 403),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "role", "method", "path", "body", "status"), FAILURES,
                         ids=[f[0] for f in FAILURES])
def test_failed_request_writes_no_event_and_changes_nothing(
    name: str, role: str, method: str, path: str, body: Any, status: int, org_a: OrgFixture
) -> None:
    client = org_a.client(role, created_by=org_a.owner)
    with org_a.scope():
        owner = Membership.objects.get(user=org_a.owner)
    before = _snapshot(org_a)
    call = getattr(client, method)
    path = path.replace("{owner}", str(owner.pk))
    response = call(path, body, format="json") if body is not None else call(path)
    assert response.status_code == status, response.content
    assert _snapshot(org_a) == before


@pytest.mark.django_db
def test_service_call_in_a_rolled_back_transaction_leaves_no_event(org_a: OrgFixture) -> None:
    before = _snapshot(org_a)

    class Abort(Exception):
        pass

    with pytest.raises(Abort), org_a.scope():
        services.create_environment(actor=SYSTEM, org=org_a.org, slug="qa", name="QA")
        raise Abort
    assert _snapshot(org_a) == before


def test_record_outside_a_transaction_is_refused_in_autocommit(
    committed_db: None, make_org: Any
) -> None:
    from audit import services as audit
    from tenants import context

    org = make_org("acme")
    token = context.activate(org.org)
    try:
        with pytest.raises(RuntimeError, match="inside the transaction"):
            audit.record("organization.updated", actor=SYSTEM, target=org.org)
    finally:
        context.deactivate(token)


# --- concurrency --------------------------------------------------------------------------------


def test_concurrent_appends_to_one_org_keep_a_valid_chain(
    committed_db: None, make_org: Any
) -> None:
    org = make_org("acme")
    threads, per_thread = 6, 4
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads)

    def work(n: int) -> None:
        try:
            barrier.wait()
            for i in range(per_thread):
                with org_scope(org.org):
                    services.create_environment(actor=SYSTEM, org=org.org,
                                                slug=f"t{n}-{i}", name=f"T {n} {i}")
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    pool = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert errors == []
    with org_scope(org.org):
        result = verify_current_org()
        sequences = list(AuditEvent.objects.order_by("sequence").values_list("sequence", flat=True))
    assert result.ok, result.describe()
    assert result.checked == 1 + threads * per_thread
    assert sequences == list(range(1, len(sequences) + 1))


# --- tamper detection ---------------------------------------------------------------------------


@pytest.fixture
def chained_org(committed_db: None, make_org: Any) -> tuple[OrgFixture, list[AuditEvent]]:
    org = make_org("acme")
    with org_scope(org.org):
        for i in range(4):
            services.create_environment(actor=SYSTEM, org=org.org, slug=f"e{i}", name=f"E{i}")
    events = _events(org)
    assert len(events) == 5
    with org_scope(org.org):
        assert verify_current_org().ok
    return org, events


def _tamper(owner_cursor: Any, org: OrgFixture, *statements: tuple[str, list[Any]]) -> None:
    cur = owner_cursor
    cur.execute("BEGIN")
    try:
        # Deferred foreign-key checks would block re-enabling the triggers.
        cur.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cur.execute("SELECT set_config('app.org_id', %s, true)", [str(org.org.pk)])
        cur.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER USER")
        for sql, params in statements:
            cur.execute(sql, params)
            assert cur.rowcount != 0, sql
        cur.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER USER")
    except BaseException:
        cur.execute("ROLLBACK")
        raise
    cur.execute("COMMIT")


def _verify(org: OrgFixture) -> chain.Verification:
    with org_scope(org.org):
        return verify_current_org()


def test_verify_detects_an_edited_event(chained_org: Any, owner_cursor: Any) -> None:
    org, events = chained_org
    _tamper(owner_cursor, org, ("UPDATE audit_auditevent SET changes = '{\"slug\": \"x\"}' "
                                "WHERE id = %s", [events[2].pk]))
    result = _verify(org)
    assert not result.ok
    assert (result.first_bad_id, result.first_bad_sequence) == (events[2].pk, 3)
    assert "edited" in result.reason
    assert result.checked == 2


def test_verify_detects_a_deleted_event(chained_org: Any, owner_cursor: Any) -> None:
    org, events = chained_org
    _tamper(owner_cursor, org, ("DELETE FROM audit_auditevent WHERE id = %s", [events[2].pk]))
    result = _verify(org)
    assert not result.ok
    assert result.first_bad_id == events[3].pk
    assert "deleted" in result.reason


def test_deleting_the_newest_event_shortens_the_verified_count(
    chained_org: Any, owner_cursor: Any
) -> None:
    # Known limit: cutting the tail leaves a valid, shorter chain. Only an external anchor
    # (the signed checkpoints of DESIGN.md, not built yet) can prove the length; until then
    # the verified count is what an operator compares against an exported checkpoint.
    org, events = chained_org
    _tamper(owner_cursor, org, ("DELETE FROM audit_auditevent WHERE id = %s", [events[-1].pk]))
    result = _verify(org)
    assert result.checked == len(events) - 1


def test_verify_detects_reordered_events(chained_org: Any, owner_cursor: Any) -> None:
    org, events = chained_org
    e2, e3 = events[2], events[3]
    _tamper(
        owner_cursor, org,
        ("UPDATE audit_auditevent SET sequence = -1 WHERE id = %s", [e2.pk]),
        ("UPDATE audit_auditevent SET sequence = %s WHERE id = %s", [e2.sequence, e3.pk]),
        ("UPDATE audit_auditevent SET sequence = %s WHERE id = %s", [e3.sequence, e2.pk]),
    )
    result = _verify(org)
    assert not result.ok
    assert (result.first_bad_id, result.first_bad_sequence) == (e3.pk, e2.sequence)


def test_verify_detects_a_forged_inserted_event(chained_org: Any, owner_cursor: Any) -> None:
    org, events = chained_org
    last = events[-1]
    # Shift the tail up by one and forge an event into the gap, linked to its neighbours.
    forged_fields = {
        "organization_id": org.org.pk, "sequence": last.sequence, "occurred_at": last.occurred_at,
        "actor_type": "system", "actor_id": "", "actor_label": "intruder",
        "action": "member.invited", "target_type": "", "target_id": "", "target_label": "",
        "environment_id": None, "changes": {}, "context": {}, "prev_hash": events[-2].hash,
    }
    import hashlib
    import json

    forged_hash = hashlib.sha256(chain.canonical(forged_fields)).hexdigest()  # no chain key
    _tamper(
        owner_cursor, org,
        ("UPDATE audit_auditevent SET sequence = sequence + 1, prev_hash = %s WHERE id = %s",
         [forged_hash, last.pk]),
        ("INSERT INTO audit_auditevent (organization_id, sequence, occurred_at, actor_type, "
         "actor_id, actor_label, action, target_type, target_id, target_label, "
         "environment_id, changes, context, prev_hash, hash) VALUES "
         "(%s, %s, %s, 'system', '', 'intruder', 'member.invited', '', '', '', NULL, "
         "%s::jsonb, %s::jsonb, %s, %s)",
         [org.org.pk, last.sequence, last.occurred_at, json.dumps({}), json.dumps({}),
          events[-2].hash, forged_hash]),
    )
    result = _verify(org)
    assert not result.ok
    assert result.first_bad_sequence == last.sequence
    assert result.first_bad_id not in {e.pk for e in events}
    assert "forged" in result.reason


def test_verification_endpoint_reports_the_first_bad_event(
    chained_org: Any, owner_cursor: Any
) -> None:
    org, events = chained_org
    client = org.client("auditor", created_by=org.owner)
    assert client.get("/api/v1/audit-events/verification").json()["ok"] is True
    _tamper(owner_cursor, org, ("UPDATE audit_auditevent SET actor_label = 'someone else' "
                                "WHERE id = %s", [events[1].pk]))
    body = client.get("/api/v1/audit-events/verification").json()
    assert body["ok"] is False
    assert body["first_bad_id"] == events[1].pk
    assert body["first_bad_sequence"] == 2


# --- append-only in the database ------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("sql", [
    "UPDATE audit_auditevent SET actor_label = 'x'",
    "DELETE FROM audit_auditevent",
    "TRUNCATE audit_auditevent",
])
def test_app_role_cannot_rewrite_the_audit_log(sql: str, org_a: OrgFixture) -> None:
    with org_a.scope():
        count = AuditEvent.objects.count()
        with pytest.raises(DatabaseError, match="permission denied"), transaction.atomic(), \
                connection.cursor() as cursor:
            cursor.execute(sql)
        assert AuditEvent.objects.count() == count


@pytest.mark.parametrize("sql", [
    "UPDATE audit_auditevent SET actor_label = 'x'",
    "DELETE FROM audit_auditevent",
    "TRUNCATE audit_auditevent",
])
def test_triggers_refuse_rewrites_even_for_the_owner(
    sql: str, committed_db: None, make_org: Any, owner_cursor: Any
) -> None:
    org = make_org("acme")
    cur = owner_cursor
    cur.execute("SELECT set_config('app.org_id', %s, false)", [str(org.org.pk)])
    cur.execute("SELECT count(*) FROM audit_auditevent")
    assert cur.fetchone()[0] == 1  # the owner sees the row, so the trigger has one to refuse
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
        cur.execute(sql)
    cur.execute("SELECT count(*), min(actor_label) FROM audit_auditevent")
    assert cur.fetchone() == (1, "tests")
    cur.execute("SELECT set_config('app.org_id', '', false)")


def test_deleting_an_environment_records_the_deletion_of_its_bound_keys(org_a):
    from audit.models import AuditEvent
    from tenants import services
    from tenants.authz import Principal
    from tenants.models import ApiKey, Environment

    org_a.key("developer", env="dev")
    with org_a.scope():
        env = Environment.objects.get(slug="dev")
        services.delete_environment(actor=Principal.system("t"), environment=env)
        assert not ApiKey.objects.filter(environment_id=env.pk).exists()
        actions = list(AuditEvent.objects.order_by("sequence").values_list("action", flat=True))
    assert actions[-2:] == ["environment.deleted", "apikey.deleted"]
