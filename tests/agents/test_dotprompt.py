"""Dotprompt export and import: lossless round trips between environments, strict parsing
with errors that name the key and line, and nothing written when a file is refused."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from audit.models import AuditEvent
from station.agents import dotprompt, services
from station.agents.models import DEFINITION_FIELDS, Agent
from station.core.errors import InvalidInput
from tests.agents.conftest import SCENARIO, env, make_agent, prepare
from tests.fixtures import SYSTEM

pytestmark = pytest.mark.django_db

NESTED_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["ticket"],
    "properties": {
        "ticket": {"type": "object", "properties": {
            "title": {"type": "string", "minLength": 1, "description": "Títre — ✓"},
            "labels": {"type": "array", "items": {"$ref": "#/$defs/label"}},
            "when": {"type": "string", "format": "date", "examples": ["2024-01-01"]},
        }},
        "flags": {"enum": ["yes", "no", "on", "off", "null", "~", "1.0"]},
    },
    "$defs": {"label": {"type": "string", "pattern": "^[a-z]+(-[a-z]+)*$"}},
}
INSTRUCTIONS = ("Tu es un assistant 🌍 de tri.\n---\nNot front matter: {{ticket.title}}\n"
                "  indented: yes\n# not a comment\r\nTrailing blank lines stay.\n\n\n")


def _rich_agent() -> Agent:
    return make_agent(
        name="triage-bot", description="Trie les tickets — « vite »\n---\nsecond line",
        instructions=INSTRUCTIONS, provider="openai-main", model="org/model-v1:beta",
        parameters={"temperature": 0.2, "top_p": 1, "stop": ["\n\n"], "seed": None,
                    "big": 1e16, "nested": {"a": [True, False, "2024-01-01"]}},
        allowed_tools=["clock/get_current_time", "clock/convert_time"],
        input_schema=NESTED_SCHEMA, max_steps=7, max_tokens=12345, max_seconds=600)


def test_round_trip_into_another_environment_is_lossless(ready):
    prepare(ready, "prod")
    with ready.scope():
        source = Agent.objects.get(pk=_rich_agent().pk)  # as stored (jsonb)
        text = dotprompt.render(source.name, source.definition())
        imported, created = services.import_agent(actor=SYSTEM, environment=env("prod"),
                                                  text=text)
        assert created and imported.name == "triage-bot"
        imported.refresh_from_db()
        for field in DEFINITION_FIELDS:
            assert getattr(imported, field) == getattr(source, field), field
        # And back out: byte for byte the same file.
        assert dotprompt.render(imported.name, imported.definition()) == text
        event = AuditEvent.objects.get(action="agent.imported")
        assert event.environment_id == env("prod").pk and event.changes["created"] is True


def test_export_reads_like_a_dotprompt_file(ready):
    with ready.scope():
        agent = _rich_agent()
        text = dotprompt.render(agent.name, agent.definition())
    assert text.startswith("---\nname: triage-bot\n")
    front, body = text[4:].split("\n---\n", 1)[0], text.split("\n---\n", 1)[1]
    doc = yaml.safe_load(front)
    assert list(doc) == ["name", "description", "model", "config", "tools", "input", "metadata"]
    assert list(doc["config"]) == sorted(doc["config"])  # nested keys sorted: stable bytes
    assert doc["model"] == "openai-main/org/model-v1:beta"
    assert doc["tools"] == ["clock/get_current_time", "clock/convert_time"]
    assert doc["input"]["schema"]["$defs"]["label"]["pattern"] == "^[a-z]+(-[a-z]+)*$"
    assert doc["metadata"] == {"station": {"max_steps": 7, "max_tokens": 12345,
                                           "max_seconds": 600}}
    assert body.startswith("Tu es un assistant 🌍")


def test_export_of_a_minimal_agent_omits_empty_keys(ready):
    with ready.scope():
        agent = make_agent(name="tiny", allowed_tools=[], parameters={})
        text = dotprompt.render(agent.name, agent.definition())
    assert text == ("---\nname: tiny\nmodel: scripted/scripted-1\nmetadata:\n  station:\n"
                    "    max_steps: 10\n    max_tokens: 100000\n    max_seconds: 300\n---\n")


def test_import_updates_an_existing_agent_and_missing_keys_mean_defaults(ready):
    with ready.scope():
        agent = make_agent(description="old", max_steps=50)
        text = ("---\nname: clock-bot\nmodel: openai-main/gpt-4o-mini\n"
                "tools: [clock/convert_time]\n---\nNew prompt")
        updated, created = services.import_agent(actor=SYSTEM, environment=env("staging"),
                                                 text=text)
        assert not created and updated.pk == agent.pk
        agent.refresh_from_db()
        assert (agent.provider, agent.model, agent.description, agent.max_steps,
                agent.parameters, agent.instructions) == (
            "openai-main", "gpt-4o-mini", "", 10, {}, "New prompt")
        event = AuditEvent.objects.get(action="agent.imported")
        assert event.changes["created"] is False
        assert event.changes["description"] == {"from": "old", "to": ""}
        # Importing the same file again changes nothing and records nothing.
        services.import_agent(actor=SYSTEM, environment=env("staging"), text=text)
        assert AuditEvent.objects.filter(action="agent.imported").count() == 1


def test_import_name_argument_wins_over_the_file(ready):
    with ready.scope():
        text = "---\nname: from-file\nmodel: scripted/s1\n---\n"
        agent, _ = services.import_agent(actor=SYSTEM, environment=env("staging"), text=text,
                                         name="given")
        assert agent.name == "given"
        with pytest.raises(InvalidInput) as caught:
            services.import_agent(actor=SYSTEM, environment=env("staging"),
                                  text="---\nmodel: scripted/s1\n---\n")
        assert "name" in caught.value.errors


def test_version_export_carries_number_and_hash_and_imports_cleanly(ready):
    with ready.scope():
        agent = make_agent()
        version = services.publish_agent(actor=SYSTEM, agent=agent)
        text = dotprompt.render(agent.name, version.definition, version=1,
                                digest=version.content_hash)
        assert f"content_hash: {version.content_hash}" in text and "version: 1" in text
        assert dotprompt.parse(text).definition == version.definition


MALFORMED = [
    ("no front matter", "You are a bot.", "front matter", "line 1: a dotprompt file starts"),
    ("never closed", "---\nmodel: scripted/s1\n", "front matter", "never closed"),
    ("bad yaml", "---\nname: x\nmodel: [scripted\n---\nbody", "front matter", "YAML error"),
    ("duplicate key", "---\nmodel: a/b\nname: x\nmodel: c/d\n---\n", "front matter",
     "line 4: YAML error: key 'model' is given twice"),
    ("not a mapping", "---\n- a\n- b\n---\n", "front matter", "must be a mapping"),
    ("unknown key", "---\nname: x\nmodel: scripted/s1\ntemperature: 0.2\n---\n",
     "temperature", "line 4: unknown key"),
    ("model without provider", "---\nname: x\nmodel: gpt-4o\n---\n", "model",
     "line 3: required: <provider>/<model>"),
    ("config not a mapping", "---\nname: x\nmodel: scripted/s1\nconfig: [1]\n---\n", "config",
     "line 4: must be a mapping"),
    ("tools not a list", "---\nname: x\nmodel: scripted/s1\ntools: clock/x\n---\n", "tools",
     "line 4: must be a list"),
    ("limit not a number",
     "---\nname: x\nmodel: scripted/s1\nmetadata:\n  station:\n    max_steps: ten\n---\n",
     "metadata.station.max_steps", "line 6: must be a whole number, got str"),
    ("unknown station key",
     "---\nname: x\nmodel: scripted/s1\nmetadata:\n  station:\n    budget: 3\n---\n",
     "metadata.station.budget", "line 6: unknown key"),
    ("unknown input key", "---\nname: x\nmodel: scripted/s1\ninput:\n  default: {}\n---\n",
     "input.default", "line 5: unknown key"),
    ("yaml date in config", "---\nname: x\nmodel: scripted/s1\nconfig:\n  since: 2024-01-01\n"
     "---\n", "config", "line 4: since: date is not a JSON value"),
    ("unknown provider", "---\nname: x\nmodel: ghost/s1\n---\n", "model",
     "line 3: No model provider named 'ghost'"),
    ("unknown tool", "---\nname: x\nmodel: scripted/s1\ntools:\n- clock/nope\n---\n", "tools",
     "line 4: clock/nope: server 'clock' has no discovered tool 'nope'"),
    ("bad schema", "---\nname: x\nmodel: scripted/s1\ninput:\n  schema: {type: 12}\n---\n",
     "input.schema", "line 5: Not a valid JSON Schema at /type"),
    ("limit out of range",
     "---\nname: x\nmodel: scripted/s1\nmetadata:\n  station: {max_seconds: 0}\n---\n",
     "metadata.station.max_seconds", "line 5: Must be between 1"),
    ("bad name", "---\nname: Bad Name\nmodel: scripted/s1\n---\n", "name", "line 2:"),
]


@pytest.mark.parametrize(("text", "key", "fragment"), [m[1:] for m in MALFORMED],
                         ids=[m[0] for m in MALFORMED])
def test_malformed_file_names_key_and_line_and_writes_nothing(ready, text, key, fragment):
    with ready.scope():
        agent = make_agent(name="x", description="keep me")
        events = AuditEvent.objects.count()
        with pytest.raises(InvalidInput) as caught:
            services.import_agent(actor=SYSTEM, environment=env("staging"), text=text)
        assert key in caught.value.errors, caught.value.errors
        assert any(fragment in m for m in caught.value.errors[key]), caught.value.errors[key]
        assert AuditEvent.objects.count() == events
        assert list(Agent.objects.values_list("name", flat=True)) == ["x"]
        agent.refresh_from_db()
        assert agent.description == "keep me"


def test_leading_comment_lines_are_allowed_and_counted(ready):
    text = "# Licensed under …\n\n---\nname: x\nmodel: scripted/s1\nbogus: 1\n---\nbody"
    with ready.scope(), pytest.raises(InvalidInput) as caught:
        services.import_agent(actor=SYSTEM, environment=env("staging"), text=text)
    assert caught.value.errors == {"bogus": [
        "line 6: unknown key (known: name, description, model, config, tools, input, "
        "metadata)"]}


def test_parse_keeps_the_body_verbatim():
    text = "---\nmodel: p/m\n---\n\n  starts with blanks\r\n---\nand a delimiter"
    assert dotprompt.parse(text).definition["instructions"] == (
        "\n  starts with blanks\r\n---\nand a delimiter")


def test_scripted_scenario_survives_the_round_trip(ready):
    with ready.scope():
        agent = make_agent(parameters={"scenario": [*SCENARIO, {"tool_calls": [
            {"name": "clock__get_current_time", "arguments": {"timezone": "Europe/Paris"}}]}]})
        parsed = dotprompt.parse(dotprompt.render(agent.name, agent.definition()))
        assert parsed.definition == agent.definition()
