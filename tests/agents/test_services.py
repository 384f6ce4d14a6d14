"""Agent services: validation by field, audit with before/after, publishing immutable
content-hashed versions, refusing duplicates and deletes under active runs, run input checks."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from audit.models import AuditEvent
from station.agents import services
from station.agents.models import Agent, AgentVersion
from station.agents.selectors import latest_version
from station.core.errors import AccessDenied, Conflict, InvalidInput
from station.runs.models import Run
from station.tools import services as tools
from station.tools.hashing import ToolDefinition
from station.tools.models import McpServer
from tenants import services as tenant_services
from tenants.authz import Principal
from tenants.models import Membership
from tests.agents.conftest import SCENARIO, TOOLS, env, make_agent
from tests.fixtures import SYSTEM

pytestmark = pytest.mark.django_db


def _errors(**fields: Any) -> dict[str, list[str]]:
    with pytest.raises(InvalidInput) as caught:
        make_agent(**fields)
    return caught.value.errors


def test_create_fills_defaults_and_records_the_definition(ready):
    with ready.scope():
        agent = make_agent(instructions="Tell the time.")
        assert (agent.max_steps, agent.max_tokens, agent.max_seconds) == (10, 100_000, 300)
        assert agent.latest_version == 0 and latest_version(agent) is None
        event = AuditEvent.objects.get(action="agent.created")
        assert event.target_id == str(agent.pk)
        assert event.changes["name"] == "clock-bot"
        assert event.changes["allowed_tools"] == ["clock/get_current_time"]
        assert event.environment_id == env("staging").pk


@pytest.mark.parametrize(("fields", "field", "fragment"), [
    ({"name": "Clock Bot"}, "name", "lowercase"),
    ({"provider": "nope"}, "provider", "No model provider named 'nope' in staging (known: "
                                       "openai-main, scripted)"),
    ({"provider": ""}, "provider", "Required"),
    ({"model": "  "}, "model", "Required"),
    ({"parameters": [1, 2]}, "parameters", "JSON object"),
    ({"parameters": {"scenario": "say hi"}}, "parameters", "scenario"),
    ({"allowed_tools": "clock/get_current_time"}, "allowed_tools", "list"),
    ({"allowed_tools": ["github/create_issue"]}, "allowed_tools",
     "github/create_issue: no MCP server named 'github' in staging"),
    ({"allowed_tools": ["clock/set_time"]}, "allowed_tools",
     "clock/set_time: server 'clock' has no discovered tool 'set_time'"),
    ({"allowed_tools": ["clock/*"]}, "allowed_tools", "wildcards are for tool policies"),
    ({"allowed_tools": ["get_current_time"]}, "allowed_tools", "write it as server/tool"),
    ({"allowed_tools": ["clock/convert_time", "clock/convert_time"]}, "allowed_tools",
     "listed twice"),
    ({"input_schema": {"type": "nonsense"}}, "input_schema", "Not a valid JSON Schema at /type"),
    ({"input_schema": {"properties": {"a": {"minLength": -1}}}}, "input_schema",
     "/properties/a/minLength"),
    ({"input_schema": "object"}, "input_schema", "JSON Schema object"),
    ({"max_steps": 0}, "max_steps", "between 1 and 500"),
    ({"max_tokens": 10**9}, "max_tokens", "between"),
    ({"max_seconds": True}, "max_seconds", "whole number"),
    ({"description": "x" * 501}, "description", "At most 500"),
])
def test_invalid_definition_names_the_field_and_writes_nothing(ready, fields, field, fragment):
    with ready.scope():
        events = AuditEvent.objects.count()
        errors = _errors(**fields)
        assert field in errors, errors
        assert any(fragment in message for message in errors[field]), errors[field]
        assert not Agent.objects.exists()
        assert AuditEvent.objects.count() == events


def test_every_problem_is_reported_at_once(ready):
    with ready.scope():
        errors = _errors(provider="nope", model="", max_steps=0, input_schema=[])
    assert {"provider", "model", "max_steps", "input_schema"} <= set(errors)


def test_unknown_field_is_refused(ready):
    with ready.scope(), pytest.raises(InvalidInput) as caught:
        make_agent(temperature=0.3)
    assert caught.value.errors == {"temperature": ["Unknown field."]}


def test_name_is_unique_per_environment_only(ready):
    from tests.agents.conftest import prepare

    prepare(ready, "prod")
    with ready.scope():
        make_agent()
        with pytest.raises(Conflict):
            make_agent()
        make_agent(slug="prod")
        assert Agent.objects.count() == 2


def test_update_records_before_and_after_of_changed_fields_only(ready):
    with ready.scope():
        agent = make_agent(instructions="v1")
        services.update_agent(actor=SYSTEM, agent=agent, instructions="v2", max_steps=10,
                              allowed_tools=["clock/get_current_time", "clock/convert_time"])
        event = AuditEvent.objects.filter(action="agent.updated").get()
        assert event.changes == {
            "instructions": {"from": "v1", "to": "v2"},
            "allowed_tools": {"from": ["clock/get_current_time"],
                              "to": ["clock/get_current_time", "clock/convert_time"]}}
        services.update_agent(actor=SYSTEM, agent=agent, instructions="v2")
        assert AuditEvent.objects.filter(action="agent.updated").count() == 1


def test_invalid_update_changes_nothing(ready):
    with ready.scope():
        agent = make_agent()
        with pytest.raises(InvalidInput) as caught:
            services.update_agent(actor=SYSTEM, agent=agent, provider="ghost", max_steps=3)
        assert "provider" in caught.value.errors
        stored = Agent.objects.get(pk=agent.pk)
        assert (stored.provider, stored.max_steps) == ("scripted", 10)


# --- publishing ------------------------------------------------------------------------------


def test_publish_freezes_the_definition_with_its_content_hash(ready):
    with ready.scope():
        agent = make_agent(instructions="Héllo\nworld", input_schema={"type": "object"})
        version = services.publish_agent(actor=SYSTEM, agent=agent, note="first")
        assert (version.number, version.note, agent.latest_version) == (1, "first", 1)
        canonical = json.dumps(agent.definition(), sort_keys=True, separators=(",", ":"),
                               ensure_ascii=False)
        assert version.content_hash == hashlib.sha256(canonical.encode()).hexdigest()
        assert version.definition == agent.definition()
        assert version.published_by_label == SYSTEM.label

        services.update_agent(actor=SYSTEM, agent=agent, instructions="changed")
        version.refresh_from_db()
        assert version.definition["instructions"] == "Héllo\nworld"
        event = AuditEvent.objects.get(action="agent.published")
        assert event.changes == {"version": 1, "content_hash": version.content_hash,
                                 "note": "first", "previous": None}


def test_publishing_an_unchanged_definition_is_a_conflict(ready):
    with ready.scope():
        agent = make_agent()
        services.publish_agent(actor=SYSTEM, agent=agent)
        with pytest.raises(Conflict, match="Nothing changed since v1"):
            services.publish_agent(actor=SYSTEM, agent=agent)
        assert AgentVersion.objects.count() == 1
        services.update_agent(actor=SYSTEM, agent=agent, max_steps=20)
        second = services.publish_agent(actor=SYSTEM, agent=agent, note="more steps")
        assert second.number == 2
        assert latest_version(agent) == second
        # Back to the v1 definition: a new version (v3), not a duplicate of the latest.
        services.update_agent(actor=SYSTEM, agent=agent, max_steps=10)
        third = services.publish_agent(actor=SYSTEM, agent=agent)
        assert third.number == 3
        assert third.content_hash == AgentVersion.objects.get(number=1).content_hash


def test_publish_refuses_a_definition_that_no_longer_holds(ready):
    with ready.scope():
        agent = make_agent(allowed_tools=["clock/convert_time"])
        server = McpServer.objects.get(name="clock")
        tools.record_discovery(actor=SYSTEM, server=server, tools=[TOOLS[0]])  # convert gone
        with pytest.raises(InvalidInput) as caught:
            services.publish_agent(actor=SYSTEM, agent=agent)
        assert "no longer lists 'convert_time'" in caught.value.errors["allowed_tools"][0]
        assert not AgentVersion.objects.exists()
        tools.record_discovery(actor=SYSTEM, server=server,
                               tools=[*TOOLS, ToolDefinition("extra", "x")])
        assert services.publish_agent(actor=SYSTEM, agent=agent).number == 1


def test_note_is_bounded(ready):
    with ready.scope():
        agent = make_agent()
        with pytest.raises(InvalidInput) as caught:
            services.publish_agent(actor=SYSTEM, agent=agent, note="x" * 501)
        assert "note" in caught.value.errors


# --- deleting --------------------------------------------------------------------------------


def _run(agent: Agent, status: str) -> Run:
    version = latest_version(agent) or services.publish_agent(actor=SYSTEM, agent=agent)
    return Run.objects.create(environment=agent.environment, agent=agent, version=version,
                              status=status)


@pytest.mark.parametrize("status", sorted(Run.ACTIVE))
def test_delete_is_refused_while_a_run_is_active(ready, status):
    with ready.scope():
        agent = make_agent()
        _run(agent, status)
        with pytest.raises(Conflict, match="1 run queued, running or waiting"):
            services.delete_agent(actor=SYSTEM, agent=agent)
        assert Agent.objects.filter(pk=agent.pk).exists()
        assert not AuditEvent.objects.filter(action="agent.deleted").exists()


def test_delete_removes_versions_and_finished_runs(ready):
    with ready.scope():
        agent = make_agent()
        _run(agent, Run.SUCCEEDED)
        _run(agent, Run.FAILED)
        services.delete_agent(actor=SYSTEM, agent=agent)
        assert not Agent.objects.exists() and not AgentVersion.objects.exists()
        assert not Run.objects.exists()
        event = AuditEvent.objects.get(action="agent.deleted")
        assert event.changes == {"name": "clock-bot", "versions": 1}


# --- permissions -----------------------------------------------------------------------------


def test_viewer_cannot_write_and_narrowed_developer_cannot_publish_there(ready, member):
    viewer = Principal.for_user(member("viewer@acme.example", "viewer"))
    developer = member("dev@acme.example", "developer")
    with ready.scope():
        with pytest.raises(AccessDenied):
            services.create_agent(actor=viewer, environment=env("staging"), name="x",
                                  provider="scripted", model="m")
        agent = make_agent()
        tenant_services.set_environment_role(
            actor=SYSTEM, membership=Membership.objects.get(user=developer),
            environment=env("staging"), role="viewer")
        with pytest.raises(AccessDenied, match=r"agents\.write"):
            services.publish_agent(actor=Principal.for_user(developer), agent=agent)
        with pytest.raises(AccessDenied):
            services.delete_agent(actor=Principal.for_user(developer), agent=agent)
        assert not AgentVersion.objects.exists()


# --- run input -------------------------------------------------------------------------------

SCHEMA = {
    "type": "object",
    "required": ["customer", "priority"],
    "additionalProperties": False,
    "properties": {
        "priority": {"enum": ["low", "high"]},
        "customer": {"type": "object", "required": ["email"],
                     "properties": {"email": {"type": "string", "format": "email"},
                                    "tags": {"type": "array", "items": {"type": "string"}}}},
    },
}


def test_validate_input_reports_each_problem_with_its_json_path(ready):
    with ready.scope():
        version = services.publish_agent(actor=SYSTEM, agent=make_agent(input_schema=SCHEMA))
        services.validate_input(version, {"priority": "low",
                                          "customer": {"email": "a@b.example"}})
        with pytest.raises(InvalidInput) as caught:
            services.validate_input(version, {"priority": "urgent", "extra": 1, "customer": {
                "email": "not-an-email", "tags": ["ok", 7]}})
    errors = caught.value.errors
    assert set(errors) == {"input", "input.$.priority", "input.$.customer.email",
                           "input.$.customer.tags[1]"}
    assert "'extra' was unexpected" in errors["input"][0]
    assert "is not one of ['low', 'high']" in errors["input.$.priority"][0]
    assert "is not a 'email'" in errors["input.$.customer.email"][0]
    assert "4 problems" in caught.value.detail


def test_empty_schema_accepts_any_input(ready):
    with ready.scope():
        version = services.publish_agent(actor=SYSTEM, agent=make_agent())
        services.validate_input(version, {"anything": [1, {"x": None}]})
        services.validate_input(version, "plain text")


def test_scenario_of_a_scripted_provider_is_checked(ready):
    with ready.scope():
        errors = _errors(parameters={"scenario": [{"content": 1}]})
        assert any("turn 1" in m for m in errors["parameters"])
        # The same parameters are fine for a provider that is not scripted.
        make_agent(provider="openai-main", parameters={"scenario": [{"content": 1}]})
        make_agent(name="two", parameters={"scenario": SCENARIO, "temperature": 0.1})


def test_schema_draft_is_taken_from_dollar_schema(ready):
    draft7 = {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
              "properties": {"n": {"type": "integer", "exclusiveMinimum": 0}}}
    with ready.scope():
        # Draft 4 wants a boolean exclusiveMinimum: a number there is an invalid draft-4 schema.
        errors = _errors(input_schema={**draft7,
                                       "$schema": "http://json-schema.org/draft-04/schema#"})
        assert any("exclusiveMinimum" in m for m in errors["input_schema"]), errors
        version = services.publish_agent(actor=SYSTEM, agent=make_agent(input_schema=draft7))
        services.validate_input(version, {"n": 1})
        with pytest.raises(InvalidInput) as caught:
            services.validate_input(version, {"n": 0})
        assert set(caught.value.errors) == {"input.$.n"}
