"""The agents REST API: CRUD of the working copy, publish (409 when unchanged), versions,
dotprompt export/import, environment visibility, and field errors as problem+json."""

from __future__ import annotations

from typing import Any

import pytest

from station.agents.models import Agent, AgentVersion
from tests.agents.conftest import SCENARIO, env, make_agent, prepare

pytestmark = pytest.mark.django_db

BODY = {"environment": "staging", "name": "clock-bot", "provider": "scripted",
        "model": "scripted-1", "instructions": "Tell the time.",
        "parameters": {"scenario": SCENARIO}, "allowed_tools": ["clock/get_current_time"],
        "input_schema": {"type": "object", "properties": {"tz": {"type": "string"}}},
        "max_steps": 5}


def _errors(response: Any) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for error in response.json()["errors"]:
        out.setdefault(error["field"], []).append(error["message"])
    return out


def _create(client: Any, **overrides: Any) -> Any:
    return client.post("/api/v1/agents", {**BODY, **overrides}, format="json")


def test_create_retrieve_update_publish_and_list_versions(ready):
    client = ready.client("developer", created_by=ready.owner)
    created = _create(client)
    assert created.status_code == 201, created.content
    agent = created.json()
    assert agent["environment"] == "staging" and agent["latest_version"] == 0
    assert agent["parameters"] == {"scenario": SCENARIO} and agent["max_steps"] == 5

    url = f"/api/v1/agents/{agent['id']}"
    assert client.get(url).json()["instructions"] == "Tell the time."
    patched = client.patch(url, {"instructions": "Tell the time, politely."}, format="json")
    assert patched.status_code == 200 and patched.json()["max_steps"] == 5

    published = client.post(f"{url}/publish", {"note": "first"}, format="json")
    assert published.status_code == 201, published.content
    version = published.json()
    assert version["number"] == 1 and len(version["content_hash"]) == 64
    assert version["definition"]["instructions"] == "Tell the time, politely."

    again = client.post(f"{url}/publish", {}, format="json")
    assert again.status_code == 409
    assert again["Content-Type"].startswith("application/problem+json")
    assert "Nothing changed since v1" in again.json()["detail"]

    versions = client.get(f"{url}/versions").json()["results"]
    assert [v["number"] for v in versions] == [1]
    one = client.get(f"/api/v1/agent-versions/{version['id']}")
    assert one.status_code == 200 and one.json()["agent_name"] == "clock-bot"
    listed = client.get(f"/api/v1/agent-versions?agent={agent['id']}").json()["results"]
    assert [v["id"] for v in listed] == [version["id"]]


def test_field_errors_are_422_with_each_field(ready):
    client = ready.client("developer", created_by=ready.owner)
    response = _create(client, provider="ghost", allowed_tools=["clock/nope"],
                       input_schema={"type": "nonsense"}, max_steps=0)
    assert response.status_code == 422
    errors = _errors(response)
    assert {"provider", "allowed_tools", "input_schema", "max_steps"} <= set(errors)
    assert "clock/nope" in errors["allowed_tools"][0]
    with ready.scope():
        assert not Agent.objects.exists()


def test_duplicate_name_is_409_and_unknown_environment_422(ready):
    client = ready.client("developer", created_by=ready.owner)
    assert _create(client).status_code == 201
    assert _create(client).status_code == 409
    response = _create(client, environment="nowhere")
    assert response.status_code == 422 and "environment" in _errors(response)


def test_list_filters_by_environment_and_hides_environments_without_access(ready, member):
    prepare(ready, "prod")
    with ready.scope():
        make_agent(name="staging-bot")
        make_agent(name="prod-bot", slug="prod")
    owner = ready.client("owner")
    names = [a["name"] for a in owner.get("/api/v1/agents").json()["results"]]
    assert names == ["prod-bot", "staging-bot"]
    only = owner.get("/api/v1/agents?environment=prod").json()["results"]
    assert [a["name"] for a in only] == ["prod-bot"]
    bound = ready.client("developer", env="staging", created_by=ready.owner)
    assert [a["name"] for a in bound.get("/api/v1/agents").json()["results"]] == ["staging-bot"]
    with ready.scope():
        prod_agent = Agent.objects.get(name="prod-bot")
    assert bound.get(f"/api/v1/agents/{prod_agent.pk}").status_code == 404
    assert bound.get("/api/v1/agents?environment=prod").status_code == 422


def test_viewer_reads_but_cannot_write(ready):
    with ready.scope():
        agent = make_agent()
    viewer = ready.client("viewer", created_by=ready.owner)
    assert viewer.get(f"/api/v1/agents/{agent.pk}").status_code == 200
    assert viewer.patch(f"/api/v1/agents/{agent.pk}", {"model": "x"},
                        format="json").status_code == 403
    assert viewer.post(f"/api/v1/agents/{agent.pk}/publish").status_code == 403
    assert viewer.delete(f"/api/v1/agents/{agent.pk}").status_code == 403
    with ready.scope():
        assert not AgentVersion.objects.exists()


def test_dotprompt_export_of_working_copy_and_version(ready):
    with ready.scope():
        agent = make_agent(instructions="v1 prompt")
    client = ready.client("developer", created_by=ready.owner)
    client.post(f"/api/v1/agents/{agent.pk}/publish", {}, format="json")
    client.patch(f"/api/v1/agents/{agent.pk}", {"instructions": "v2 prompt"}, format="json")

    current = client.get(f"/api/v1/agents/{agent.pk}/dotprompt")
    assert current.status_code == 200
    assert current["Content-Type"].startswith("text/plain")
    assert current["Content-Disposition"] == 'attachment; filename="clock-bot.prompt"'
    assert current.content.decode().endswith("---\nv2 prompt")

    v1 = client.get(f"/api/v1/agents/{agent.pk}/dotprompt?version=1")
    assert v1.content.decode().endswith("---\nv1 prompt")
    assert "version: 1" in v1.content.decode()
    assert client.get(f"/api/v1/agents/{agent.pk}/dotprompt?version=9").status_code == 404
    assert client.get(f"/api/v1/agents/{agent.pk}/dotprompt?version=x").status_code == 422


def test_import_creates_then_updates_and_refuses_bad_files(ready):
    client = ready.client("developer", created_by=ready.owner)
    text = "---\nname: imported\nmodel: scripted/s1\ntools: [clock/convert_time]\n---\nHi"
    first = client.post("/api/v1/agents/import", {"environment": "staging", "dotprompt": text},
                        format="json")
    assert first.status_code == 201, first.content
    assert first.json()["created"] is True and first.json()["allowed_tools"] == [
        "clock/convert_time"]
    second = client.post("/api/v1/agents/import",
                         {"environment": "staging", "dotprompt": text.replace("Hi", "Hello")},
                         format="json")
    assert second.status_code == 200 and second.json()["created"] is False
    assert second.json()["instructions"] == "Hello"

    bad = client.post("/api/v1/agents/import",
                      {"environment": "staging", "dotprompt": "---\nname: y\nmodel: a\n---\n"},
                      format="json")
    assert bad.status_code == 422
    assert _errors(bad)["model"][0].startswith("line 3:")
    with ready.scope():
        assert list(Agent.objects.values_list("name", flat=True)) == ["imported"]


def test_round_trip_through_the_api_into_another_environment(ready):
    prepare(ready, "prod")
    with ready.scope():
        agent = make_agent(description="Multi\nline ✓", input_schema={
            "type": "object", "properties": {"a": {"type": "array", "items": {
                "type": "object", "properties": {"b": {"type": "integer"}}}}}})
    client = ready.client("owner")
    text = client.get(f"/api/v1/agents/{agent.pk}/dotprompt").content.decode()
    response = client.post("/api/v1/agents/import", {"environment": "prod", "dotprompt": text},
                           format="json")
    assert response.status_code == 201
    with ready.scope():
        copy = Agent.objects.get(environment=env("prod"))
        assert copy.definition() == Agent.objects.get(pk=agent.pk).definition()


def test_delete_is_409_while_a_run_is_active(ready):
    from station.runs.models import Run

    with ready.scope():
        agent = make_agent()
    client = ready.client("developer", created_by=ready.owner)
    version = client.post(f"/api/v1/agents/{agent.pk}/publish", {}, format="json").json()
    with ready.scope():
        run = Run.objects.create(environment=env("staging"), agent=agent,
                                 version_id=version["id"], status=Run.RUNNING)
    response = client.delete(f"/api/v1/agents/{agent.pk}")
    assert response.status_code == 409
    with ready.scope():
        Run.objects.filter(pk=run.pk).update(status=Run.SUCCEEDED)
    assert client.delete(f"/api/v1/agents/{agent.pk}").status_code == 204


def test_openapi_documents_the_agent_and_policy_routes(ready):
    import yaml
    from rest_framework.test import APIClient

    paths = yaml.safe_load(APIClient().get("/api/schema/").content)["paths"]
    for path in ("/api/v1/agents", "/api/v1/agents/{id}/publish", "/api/v1/agents/import",
                 "/api/v1/agents/{id}/dotprompt", "/api/v1/agents/{id}/versions",
                 "/api/v1/agent-versions/{id}", "/api/v1/tool-policies",
                 "/api/v1/tool-policies/{id}"):
        assert path in paths, path
    export = paths["/api/v1/agents/{id}/dotprompt"]["get"]
    assert "text/plain" in export["responses"]["200"]["content"]
