"""The `agents` and `tool_policies` bundle kinds: agents travel as dotprompt files, apply
creates or updates working copies (publishing only when a file asks), agents whose provider
or tools the target lacks are reported, not applied, and invalid files change nothing."""

from __future__ import annotations

import pytest
import yaml

from audit.models import AuditEvent
from station.agents import dotprompt
from station.agents.models import Agent, AgentVersion
from station.core.errors import InvalidInput
from station.envcode import services
from station.envcode.bundle import MANIFEST
from station.tools.models import ToolPolicy
from tests.agents.conftest import make_agent, prepare
from tests.envcode.conftest import env
from tests.fixtures import SYSTEM, OrgFixture

pytestmark = pytest.mark.django_db

MANIFEST_TEXT = "format_version: 1\n"


@pytest.fixture
def both(org_a: OrgFixture) -> OrgFixture:
    prepare(org_a, "staging")
    prepare(org_a, "prod")
    return org_a


def _seed_staging() -> Agent:
    from station.tools import policies

    agent = make_agent(instructions="Tell the time.\nAlways in UTC ✓",
                       input_schema={"type": "object", "properties": {"tz": {"type": "string"}}})
    make_agent(name="helper", provider="openai-main", model="gpt-4o-mini", allowed_tools=[],
               parameters={"temperature": 0.1})
    policies.set_policy(actor=SYSTEM, environment=env("staging"), tool="clock/*",
                        effect="require_approval")
    policies.set_policy(actor=SYSTEM, environment=env("staging"),
                        tool="clock/convert_time", effect="deny", note="Not needed")
    return agent


def test_export_writes_one_dotprompt_per_agent_and_the_policies(both):
    with both.scope():
        assert not any(p.startswith("agents/") for p in services.export_bundle(
            actor=SYSTEM, environment=env("staging")))
        agent = _seed_staging()
        files = services.export_bundle(actor=SYSTEM, environment=env("staging"))
        assert files["agents/clock-bot.prompt"] == dotprompt.render(
            "clock-bot", Agent.objects.get(pk=agent.pk).definition())
    assert "agents/helper.prompt" in files
    assert "publish" not in files["agents/clock-bot.prompt"]
    assert yaml.safe_load(files["tool_policies.yaml"]) == {
        "clock/*": "require_approval",
        "clock/convert_time": {"effect": "deny", "note": "Not needed"}}


def test_apply_creates_working_copies_without_publishing_and_is_idempotent(both):
    with both.scope():
        _seed_staging()
        files = services.export_bundle(actor=SYSTEM, environment=env("staging"))
        plan = services.apply_bundle(actor=SYSTEM, environment=env("prod"), files=files)
        assert {(c.kind, c.name, c.action) for c in plan.actionable} >= {
            ("agents", "clock-bot", "add"), ("agents", "helper", "add"),
            ("tool_policies", "clock/*", "add"), ("tool_policies", "clock/convert_time", "add")}
        staging = {a.name: a.definition() for a in Agent.objects.filter(
            environment=env("staging"))}
        prod = {a.name: a.definition() for a in Agent.objects.filter(environment=env("prod"))}
        assert prod == staging
        assert not AgentVersion.objects.exists()
        assert ToolPolicy.objects.filter(environment=env("prod")).count() == 2
        assert AuditEvent.objects.filter(action="agent.created").count() == 4

        again = services.apply_bundle(actor=SYSTEM, environment=env("prod"), files=files)
        assert again.empty and not again.applied


def test_publish_true_publishes_once(both):
    with both.scope():
        agent = _seed_staging()
        text = dotprompt.render("clock-bot", Agent.objects.get(pk=agent.pk).definition(),
                                publish=True)
        files = {MANIFEST: MANIFEST_TEXT, "agents/clock-bot.prompt": text}
        plan = services.apply_bundle(actor=SYSTEM, environment=env("prod"), files=files)
        assert [(c.name, c.action, c.note) for c in plan.actionable] == [
            ("clock-bot", "add", "and published")]
        prod_agent = Agent.objects.get(environment=env("prod"))
        assert prod_agent.latest_version == 1
        assert AgentVersion.objects.get(agent=prod_agent).note == "environment bundle"
        assert services.apply_bundle(actor=SYSTEM, environment=env("prod"), files=files).empty
        # An already-applied working copy still gets published when the file asks.
        services.apply_bundle(actor=SYSTEM, environment=env("staging"), files=files)
        assert AgentVersion.objects.filter(agent=agent).count() == 1


def test_agent_whose_provider_or_tools_are_missing_is_reported_not_applied(org_a):
    prepare(org_a, "staging")
    with org_a.scope():
        _seed_staging()
        files = services.export_bundle(actor=SYSTEM, environment=env("staging"))
        files.pop("providers.yaml", None)  # providers are another kind's business here
        files.pop("mcp_servers.yaml", None)
        plan = services.apply_bundle(actor=SYSTEM, environment=env("prod"), files=files)
        missing = {c.name: c.note for c in plan.missing if c.kind == "agents"}
        assert "model provider 'scripted' is missing in the target" in missing["clock-bot"]
        assert "clock/get_current_time not discovered in the target" in missing["clock-bot"]
        assert "model provider 'openai-main' is missing" in missing["helper"]
        blocked = {c.name for c in plan.missing if c.kind == "tool_policies"}
        assert blocked == {"clock/*", "clock/convert_time"}
        assert not Agent.objects.filter(environment=env("prod")).exists()


def test_changes_update_and_removal_needs_prune(both):
    with both.scope():
        _seed_staging()
        files = services.export_bundle(actor=SYSTEM, environment=env("staging"))
        services.apply_bundle(actor=SYSTEM, environment=env("prod"), files=files)
        edited = files["agents/clock-bot.prompt"].replace("Always in UTC", "Always local")
        files = {MANIFEST: MANIFEST_TEXT, "agents/clock-bot.prompt": edited,
                 "tool_policies.yaml": "clock/*: deny\n"}
        plan = services.apply_bundle(actor=SYSTEM, environment=env("prod"), files=files)
        assert [(c.kind, c.name, c.action) for c in plan.actionable] == [
            ("tool_policies", "clock/*", "change"), ("agents", "clock-bot", "change")]
        assert "Always local" in Agent.objects.get(environment=env("prod"),
                                                   name="clock-bot").instructions
        pruned = services.apply_bundle(actor=SYSTEM, environment=env("prod"), files=files,
                                       prune=True)
        assert {(c.kind, c.name, c.action) for c in pruned.actionable} == {
            ("agents", "helper", "remove"), ("tool_policies", "clock/convert_time", "remove")}
        assert list(Agent.objects.filter(environment=env("prod")).values_list(
            "name", flat=True)) == ["clock-bot"]


BAD = [
    ("agents/Bad Name.prompt", "---\nmodel: scripted/s\n---\n", "agents/Bad Name.prompt",
     "invalid agent name"),
    ("agents/x.txt", "---\nmodel: scripted/s\n---\n", "agents/x.txt", "not an agent file"),
    ("agents/x.prompt", "---\nname: y\nmodel: scripted/s\n---\n", "agents/x.prompt: name",
     "its path says x"),
    ("agents/x.prompt", "no front matter", "agents/x.prompt: front matter", "line 1"),
    ("agents/x.prompt", "---\nmodel: scripted/s\nmetadata:\n  station: {max_steps: 0}\n---\n",
     "agents/x.prompt: metadata.station.max_steps", "line 4: Must be between 1"),
    ("agents/x.prompt", "---\nmodel: scripted/s\ninput: {schema: {type: 3}}\n---\n",
     "agents/x.prompt: input.schema", "line 3: Not a valid JSON Schema"),
    ("tool_policies.yaml", "clock: deny\n", "tool_policies.yaml: clock", "server/tool"),
    ("tool_policies.yaml", "clock/*: allow\n", "tool_policies.yaml: clock/*.effect",
     "deny or require_approval"),
    ("tool_policies.yaml", "clock/*: {effect: deny, why: x}\n",
     "tool_policies.yaml: clock/*.why", "unknown field"),
]


@pytest.mark.parametrize(("path", "text", "field", "message"), BAD,
                         ids=[f"{b[0]}-{b[3]}" for b in BAD])
def test_invalid_files_name_the_entry_and_change_nothing(both, path, text, field, message):
    with both.scope():
        events = AuditEvent.objects.count()
        with pytest.raises(InvalidInput) as caught:
            services.apply_bundle(actor=SYSTEM, environment=env("prod"),
                                  files={MANIFEST: MANIFEST_TEXT, path: text,
                                         "agents/ok.prompt": "---\nmodel: scripted/s\n---\n"})
        errors = caught.value.errors
        assert field in errors, errors
        assert any(message in m for m in errors[field]), errors[field]
        assert not Agent.objects.exists() and AuditEvent.objects.count() == events


def test_promotion_carries_published_versions_and_publishes_them_in_the_target(both):
    from station.agents import services as agents

    with both.scope():
        agent = _seed_staging()
        version = agents.publish_agent(actor=SYSTEM, agent=agent)
        # An edit after publishing is a draft: it stays in staging.
        agents.update_agent(actor=SYSTEM, agent=agent, description="draft, not published")
        plan = services.promote(actor=SYSTEM, source=env("staging"), target=env("prod"))
        actions = {(c.kind, c.name, c.action) for c in plan.changes}
        assert ("agents", "clock-bot", "add") in actions
        # `helper` was never published in staging: reported, not promoted.
        assert ("agents", "helper", "missing") in actions
        assert not Agent.objects.filter(environment=env("prod"), name="helper").exists()
        prod_agent = Agent.objects.get(environment=env("prod"), name="clock-bot")
        assert prod_agent.definition() == version.definition
        assert prod_agent.description != "draft, not published"
        prod_version = AgentVersion.objects.get(agent=prod_agent)
        assert prod_version.content_hash == version.content_hash
        # Promoting again changes nothing.
        again = services.promote(actor=SYSTEM, source=env("staging"), target=env("prod"))
        assert not [c for c in again.actionable if c.kind == "agents"]
        assert AgentVersion.objects.filter(agent=prod_agent).count() == 1
