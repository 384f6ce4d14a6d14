"""Agents and tool policies in the console: list per environment, the editor with inline
service errors (JSON fields, tools multi-select, limits), detail with versions, Publish,
dotprompt export and import, and the tool policies page."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from station.agents import services
from station.agents.models import Agent, AgentVersion
from station.tools.models import ToolPolicy
from tenants import services as tenant_services
from tenants.models import Membership
from tests.agents.conftest import SCENARIO, env, make_agent, prepare
from tests.fixtures import SYSTEM

pytestmark = pytest.mark.django_db


def url(name: str, fx: Any, *args: object) -> str:
    return reverse(f"console:{name}", args=[fx.org.slug, *args])


def text(response: Any) -> str:
    return response.content.decode()


def _form(**overrides: Any) -> dict[str, Any]:
    return {"name": "clock-bot", "description": "", "provider": "scripted",
            "model": "scripted-1", "instructions": "Tell the time.",
            "parameters": json.dumps({"scenario": SCENARIO}),
            "allowed_tools": ["clock/get_current_time"], "input_schema": "",
            "max_steps": "10", "max_tokens": "100000", "max_seconds": "300", **overrides}


@pytest.fixture
def staged(org_a):
    prepare(org_a, "staging")
    return org_a


def test_nav_and_list_per_environment(login, staged):
    prepare(staged, "prod")
    with staged.scope():
        make_agent(description="Tells the time")
        make_agent(name="prod-only", slug="prod")
    page = text(login(staged.owner).get(url("agents", staged) + "?env=staging"))
    assert ">Agents</a>" in page and ">Tool policies</a>" in page
    assert 'data-name="clock-bot"' in page and "prod-only" not in page
    assert "scripted/scripted-1" in page and 'id="new-agent"' in page


def test_create_with_inline_errors_then_success(login, staged):
    client = login(staged.owner)
    new = url("agents-new", staged) + "?env=staging"
    page = text(client.get(new))
    assert 'value="clock/get_current_time"' in page and 'value="clock/convert_time"' in page
    assert "scripted (Scripted" in page

    bad = client.post(new, _form(parameters="{not json", input_schema='{"type": "nope"}',
                                 max_steps="0"))
    assert bad.status_code == 200
    body = text(bad)
    assert "Not valid JSON (line 1, column 2)" in body
    with staged.scope():
        assert not Agent.objects.exists()

    bad = client.post(new, _form(input_schema='{"type": "nope"}', max_steps="0"))
    body = text(bad)
    assert "Not a valid JSON Schema at /type" in body and "Must be between 1 and 500" in body
    assert body.count('class="field-error"') >= 2

    ok = client.post(new, _form(input_schema='{"type": "object"}'))
    assert ok.status_code == 302
    with staged.scope():
        agent = Agent.objects.get()
        assert agent.input_schema == {"type": "object"}
        assert agent.parameters == {"scenario": SCENARIO}
        assert agent.allowed_tools == ["clock/get_current_time"]
    assert ok["Location"] == url("agents-detail", staged, agent.pk)


def test_edit_prefills_json_and_saves(login, staged):
    with staged.scope():
        agent = make_agent(input_schema={"type": "object"})
    client = login(staged.owner)
    page = text(client.get(url("agents-edit", staged, agent.pk)))
    assert "&quot;scenario&quot;" in page and 'id="limits"' in page
    response = client.post(url("agents-edit", staged, agent.pk),
                           _form(instructions="Be brief.", allowed_tools=[]))
    assert response.status_code == 302
    with staged.scope():
        agent.refresh_from_db()
        assert (agent.instructions, agent.allowed_tools) == ("Be brief.", [])


def test_detail_publish_and_exports(login, staged):
    with staged.scope():
        agent = make_agent()
    client = login(staged.owner)
    page = text(client.get(url("agents-detail", staged, agent.pk)))
    assert 'id="publish-agent"' in page and "Not published yet" in page
    response = client.post(url("agents-publish", staged, agent.pk), {"note": "first cut"},
                           follow=True)
    page = text(response)
    assert "Published “clock-bot” v1." in page and 'data-number="1"' in page
    assert "first cut" in page
    again = text(client.post(url("agents-publish", staged, agent.pk), {}, follow=True))
    assert "Nothing changed since v1" in again
    with staged.scope():
        assert AgentVersion.objects.count() == 1

    export = client.get(url("agents-dotprompt", staged, agent.pk))
    assert export["Content-Disposition"] == 'attachment; filename="clock-bot.prompt"'
    assert text(export).startswith("---\nname: clock-bot\n")
    v1 = client.get(url("agents-dotprompt", staged, agent.pk) + "?version=1")
    assert "version: 1" in text(v1)
    assert client.get(url("agents-dotprompt", staged, agent.pk) + "?version=7").status_code \
        == 404


def test_publish_refused_by_validation_says_why(login, staged):
    with staged.scope():
        agent = make_agent()
        Agent.objects.filter(pk=agent.pk).update(provider="gone")
    page = text(login(staged.owner).post(url("agents-publish", staged, agent.pk), {},
                                         follow=True))
    assert "Not published: provider: No model provider named &#x27;gone&#x27;" in page


def test_import_by_upload_and_by_paste_with_line_errors(login, staged):
    client = login(staged.owner)
    target = url("agents-import", staged) + "?env=staging"
    upload = SimpleUploadedFile("bot.prompt", b"---\nname: uploaded\nmodel: scripted/s1\n"
                                              b"---\nHello", content_type="text/plain")
    response = client.post(target, {"file": upload, "text": "", "name": ""})
    assert response.status_code == 302
    bad = text(client.post(target, {"text": "---\nname: x\nmodel: nope\n---\n", "name": ""}))
    assert "model: line 3: required: &lt;provider&gt;/&lt;model&gt;" in bad
    empty = text(client.post(target, {"text": "", "name": ""}))
    assert "Choose a .prompt file or paste its text." in empty
    with staged.scope():
        assert list(Agent.objects.values_list("name", "instructions")) == [
            ("uploaded", "Hello")]


def test_delete_refused_with_active_run_then_allowed(login, staged):
    from station.runs.models import Run

    with staged.scope():
        agent = make_agent()
        version = services.publish_agent(actor=SYSTEM, agent=agent)
        run = Run.objects.create(environment=env("staging"), agent=agent, version=version,
                                 status=Run.QUEUED)
    client = login(staged.owner)
    page = text(client.post(url("agents-delete", staged, agent.pk), follow=True))
    assert "queued, running or waiting for approval" in page
    with staged.scope():
        Run.objects.filter(pk=run.pk).update(status=Run.CANCELLED)
    assert client.post(url("agents-delete", staged, agent.pk)).status_code == 302
    with staged.scope():
        assert not Agent.objects.exists()


def test_viewer_sees_but_cannot_edit_and_narrowed_developer_is_refused(login, staged, member):
    with staged.scope():
        agent = make_agent()
    viewer = login(member("viewer@acme.example", "viewer"))
    page = text(viewer.get(url("agents-detail", staged, agent.pk)))
    assert 'id="publish-agent"' not in page and 'id="export-dotprompt"' in page
    assert viewer.post(url("agents-publish", staged, agent.pk)).status_code == 403
    developer = member("dev@acme.example", "developer")
    with staged.scope():
        tenant_services.set_environment_role(
            actor=SYSTEM, membership=Membership.objects.get(user=developer),
            environment=env("staging"), role="viewer")
    client = login(developer)
    assert client.post(url("agents-publish", staged, agent.pk)).status_code == 403
    assert client.post(url("agents-edit", staged, agent.pk), _form()).status_code == 403
    with staged.scope():
        assert not AgentVersion.objects.exists()


def test_tool_policies_page_add_change_remove(login, staged):
    client = login(staged.owner)
    listing = url("tool-policies", staged) + "?env=staging"
    page = text(client.get(listing))
    assert "No tool policies in Staging" in page and '<option value="clock/*">' in page
    bad = text(client.post(url("tool-policies-set", staged) + "?env=staging",
                           {"tool": "github/*", "effect": "deny", "note": ""}))
    assert "No MCP server named &#x27;github&#x27; in staging." in bad
    ok = client.post(url("tool-policies-set", staged) + "?env=staging",
                     {"tool": "clock/*", "effect": "require_approval", "note": "ask"})
    assert ok.status_code == 302
    page = text(client.get(listing))
    assert 'data-tool="clock/*" data-effect="require_approval"' in page
    with staged.scope():
        policy = ToolPolicy.objects.get()
    assert client.post(url("tool-policies-delete", staged, policy.pk)).status_code == 302
    with staged.scope():
        assert not ToolPolicy.objects.exists()
    viewer = login(staged.add_member("viewer@acme.example", "viewer").user)
    assert 'id="policy-form"' not in text(viewer.get(listing))
    assert viewer.post(url("tool-policies-set", staged) + "?env=staging",
                       {"tool": "clock/*", "effect": "deny"}).status_code == 403
