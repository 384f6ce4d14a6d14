"""Tool policies: set (create or change), delete, validation, audit, the strictest-wins
selector the run loop calls, and the REST API."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from station.core.errors import AccessDenied, InvalidInput
from station.tools import policies
from station.tools.models import ToolPolicy
from tenants.authz import Principal
from tests.agents.conftest import env, prepare
from tests.fixtures import SYSTEM

pytestmark = pytest.mark.django_db


def _set(tool: str, effect: str, slug: str = "staging", **kwargs: str) -> ToolPolicy:
    return policies.set_policy(actor=SYSTEM, environment=env(slug), tool=tool, effect=effect,
                               **kwargs)


def test_set_creates_then_changes_one_policy_per_pattern(ready):
    with ready.scope():
        first = _set("clock/get_current_time", "require_approval", note="sensitive")
        again = _set("clock/get_current_time", "deny", note="sensitive")
        assert again.pk == first.pk and ToolPolicy.objects.count() == 1
        events = list(AuditEvent.objects.filter(action="tool_policy.set").order_by("sequence"))
        assert events[0].changes == {"tool": "clock/get_current_time",
                                     "effect": "require_approval", "note": "sensitive"}
        assert events[1].changes == {"effect": {"from": "require_approval", "to": "deny"},
                                     "tool": "clock/get_current_time"}
        _set("clock/get_current_time", "deny", note="sensitive")  # no change, no event
        assert AuditEvent.objects.filter(action="tool_policy.set").count() == 2


@pytest.mark.parametrize(("tool", "effect", "field", "fragment"), [
    ("clock", "deny", "tool", "server/tool or server/*"),
    ("clock/", "deny", "tool", "server/tool"),
    ("/x", "deny", "tool", "server/tool"),
    ("clock/a b", "deny", "tool", "server/tool"),
    ("github/*", "deny", "tool", "No MCP server named 'github' in staging"),
    ("clock/*", "allow", "effect", "deny' or 'require_approval"),
])
def test_invalid_policy_names_the_field(ready, tool, effect, field, fragment):
    with ready.scope():
        with pytest.raises(InvalidInput) as caught:
            _set(tool, effect)
        assert any(fragment in m for m in caught.value.errors[field]), caught.value.errors
        assert not ToolPolicy.objects.exists()


def test_a_policy_may_name_a_tool_not_discovered_yet(ready):
    with ready.scope():
        assert _set("clock/future_tool", "deny").tool == "clock/future_tool"


def test_policy_for_strictest_wins_and_is_per_environment(ready):
    prepare(ready, "prod")
    with ready.scope():
        staging = env("staging")
        assert policies.policy_for(staging, "clock", "get_current_time") is None
        _set("clock/*", "require_approval")
        assert policies.policy_for(staging, "clock", "get_current_time") == "require_approval"
        assert policies.policy_for(staging, "clock", "convert_time") == "require_approval"
        _set("clock/convert_time", "deny")
        assert policies.policy_for(staging, "clock", "convert_time") == "deny"
        assert policies.policy_for(staging, "clock", "get_current_time") == "require_approval"
        _set("clock/*", "deny")
        policy = ToolPolicy.objects.get(tool="clock/convert_time")
        policies.delete_policy(actor=SYSTEM, policy=policy)
        assert policies.policy_for(staging, "clock", "convert_time") == "deny"
        assert policies.policy_for(env("prod"), "clock", "convert_time") is None
        assert policies.policy_for(staging, "other", "convert_time") is None
        assert AuditEvent.objects.get(action="tool_policy.deleted").changes == {
            "tool": "clock/convert_time", "effect": "deny"}


def test_policies_need_tools_manage_in_the_environment(ready, member):
    operator = Principal.for_user(member("op@acme.example", "operator"))
    with ready.scope():
        with pytest.raises(AccessDenied, match=r"tools\.manage"):
            policies.set_policy(actor=operator, environment=env("staging"), tool="clock/*",
                                effect="deny")
        policy = _set("clock/*", "deny")
        with pytest.raises(AccessDenied):
            policies.delete_policy(actor=operator, policy=policy)
        assert ToolPolicy.objects.count() == 1


def test_rest_api(ready):
    client = ready.client("developer", created_by=ready.owner)
    body = {"environment": "staging", "tool": "clock/*", "effect": "require_approval"}
    created = client.post("/api/v1/tool-policies", body, format="json")
    assert created.status_code == 201, created.content
    policy = created.json()
    assert (policy["environment"], policy["tool"], policy["effect"]) == (
        "staging", "clock/*", "require_approval")
    assert client.post("/api/v1/tool-policies", {**body, "effect": "deny"},
                       format="json").status_code == 200
    url = f"/api/v1/tool-policies/{policy['id']}"
    assert client.get(url).json()["effect"] == "deny"
    patched = client.patch(url, {"effect": "require_approval", "note": "ask first"},
                           format="json")
    assert patched.json()["note"] == "ask first"
    listed = client.get("/api/v1/tool-policies?environment=staging").json()["results"]
    assert [p["tool"] for p in listed] == ["clock/*"]
    bad = client.post("/api/v1/tool-policies", {**body, "tool": "ghost/*"}, format="json")
    assert bad.status_code == 422
    viewer = ready.client("viewer", created_by=ready.owner)
    assert viewer.get(url).status_code == 200
    assert viewer.delete(url).status_code == 403
    assert client.delete(url).status_code == 204
    assert client.get(url).status_code == 404
