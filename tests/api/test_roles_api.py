"""`/api/v1/roles`: built-in and custom roles by name, custom ones created, changed and deleted;
custom role names accepted by the members and API-key endpoints."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from rest_framework.test import APIClient

from tenants.models import CustomRole, Membership
from tenants.permissions import ROLES
from tests.fixtures import OrgFixture, SeededOrg

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"
BODY = {"name": "deployer", "description": "Ships agents",
        "permissions": ["org.read", "agents.read", "agents.run"]}


def _owner(org: OrgFixture) -> Any:
    return org.client("owner", created_by=org.owner)


def test_list_marks_built_in_and_custom_roles(org_a: OrgFixture) -> None:
    client = _owner(org_a)
    assert client.post("/api/v1/roles", BODY, format="json").status_code == 201
    roles = client.get("/api/v1/roles").json()
    assert [r["name"] for r in roles] == [*ROLES, "deployer"]
    by_name = {r["name"]: r for r in roles}
    assert all(by_name[name]["built_in"] for name in ROLES)
    assert by_name["viewer"]["created_at"] is None
    custom = by_name["deployer"]
    assert custom["built_in"] is False and custom["created_at"] is not None
    assert custom["permissions"] == sorted(BODY["permissions"])
    assert client.get("/api/v1/roles/deployer").json() == custom


def test_create_update_delete_a_custom_role(org_a: OrgFixture) -> None:
    client = _owner(org_a)
    created = client.post("/api/v1/roles", BODY, format="json")
    assert created.status_code == 201, created.content
    changed = client.patch("/api/v1/roles/deployer", {"permissions": ["org.read"]},
                           format="json")
    assert changed.status_code == 200, changed.content
    assert changed.json()["permissions"] == ["org.read"]
    assert changed.json()["description"] == "Ships agents"  # untouched when not sent
    described = client.patch("/api/v1/roles/deployer", {"description": "Reads"}, format="json")
    assert described.json()["description"] == "Reads"
    assert client.delete("/api/v1/roles/deployer").status_code == 204
    assert client.get("/api/v1/roles/deployer").status_code == 404


def test_unknown_permission_is_a_422_naming_it(org_a: OrgFixture) -> None:
    response = _owner(org_a).post(
        "/api/v1/roles", {**BODY, "permissions": ["org.read", "secrets.reveal"]}, format="json")
    assert response.status_code == 422
    assert response["Content-Type"].startswith(PROBLEM)
    assert "secrets.reveal" in str(response.json())


def test_built_in_name_is_a_422(org_a: OrgFixture) -> None:
    response = _owner(org_a).post("/api/v1/roles", {**BODY, "name": "admin"}, format="json")
    assert response.status_code == 422
    assert "built-in" in str(response.json())


@pytest.mark.parametrize("method, body", [("patch", {"permissions": ["org.read"]}),
                                          ("delete", None)])
def test_built_in_roles_are_read_only(org_a: OrgFixture, method: str, body: Any) -> None:
    response = getattr(_owner(org_a), method)("/api/v1/roles/viewer", body, format="json")
    assert response.status_code == 409, response.content
    assert "read-only" in response.json()["detail"]


def test_deleting_an_assigned_role_is_a_409_naming_how_many(org_a: OrgFixture) -> None:
    client = _owner(org_a)
    client.post("/api/v1/roles", BODY, format="json")
    invited = client.post("/api/v1/members", {"email": "d@acme.example", "role": "deployer"})
    assert invited.status_code == 201, invited.content
    key = client.post("/api/v1/api-keys", {"name": "ci", "role": "deployer"})
    assert key.status_code == 201, key.content
    assert key.json()["role"] == "deployer"
    scoped = client.post("/api/v1/api-keys", {"name": "s", "scopes": ["org.read"]}).json()
    assert scoped["role"] is None
    response = client.delete("/api/v1/roles/deployer")
    assert response.status_code == 409
    assert "1 members" in response.json()["detail"]
    assert "1 API keys" in response.json()["detail"]


def test_members_endpoints_accept_custom_roles(org_a: OrgFixture) -> None:
    client = _owner(org_a)
    client.post("/api/v1/roles", BODY, format="json")
    member = client.post("/api/v1/members", {"email": "v@acme.example", "role": "viewer"}).json()
    changed = client.patch(f"/api/v1/members/{member['id']}", {"role": "deployer"})
    assert changed.status_code == 200 and changed.json()["role"] == "deployer"
    narrowed = client.post(f"/api/v1/members/{member['id']}/environment-role",
                           {"environment": "prod", "role": "deployer"}, format="json")
    assert narrowed.status_code == 200, narrowed.content
    assert narrowed.json()["environment_roles"] == {"prod": "deployer"}
    unknown = client.patch(f"/api/v1/members/{member['id']}", {"role": "deployr"})
    assert unknown.status_code == 422
    assert "deployer" in str(unknown.json())  # the choices include custom roles


def test_managing_roles_needs_roles_manage(org_a: OrgFixture) -> None:
    admin_like = org_a.client(scopes=["roles.read", "members.manage", "org.read"])
    assert admin_like.get("/api/v1/roles").status_code == 200
    assert admin_like.post("/api/v1/roles", BODY, format="json").status_code == 403


# --- another org's roles ------------------------------------------------------------------


def test_another_orgs_custom_role_is_a_404_like_a_missing_one(
    seeded_a: SeededOrg, seeded_b: SeededOrg
) -> None:
    client = _owner(seeded_a.fx)
    foreign = "globex-deployer"
    with seeded_b.fx.scope():
        before = CustomRole.objects.values().get(name=foreign)
    for method, body in [("get", None), ("patch", {"permissions": ["org.read"]}),
                         ("delete", None)]:
        missing = getattr(client, method)("/api/v1/roles/no-such-role", body, format="json")
        response = getattr(client, method)(f"/api/v1/roles/{foreign}", body, format="json")
        assert response.status_code == missing.status_code == 404
        assert response.json()["detail"] == missing.json()["detail"]
    listed = {r["name"] for r in client.get("/api/v1/roles").json()}
    assert foreign not in listed and "acme-deployer" in listed
    with seeded_b.fx.scope():
        assert CustomRole.objects.values().get(name=foreign) == before


def test_another_orgs_custom_role_cannot_be_assigned_here(
    org_a: OrgFixture, org_b: OrgFixture
) -> None:
    _owner(org_b).post("/api/v1/roles", {**BODY, "name": "globex-boss",
                                         "permissions": ["org.read", "org.manage"]},
                       format="json")
    client = _owner(org_a)
    invite = client.post("/api/v1/members", {"email": "x@acme.example", "role": "globex-boss"})
    assert invite.status_code == 422
    key = client.post("/api/v1/api-keys", {"name": "k", "role": "globex-boss"})
    assert key.status_code == 422
    with org_a.scope():
        assert not Membership.objects.filter(role="globex-boss").exists()


def test_roles_routes_are_documented() -> None:
    schema = yaml.safe_load(APIClient().get("/api/schema/").content)
    assert set(schema["paths"]["/api/v1/roles"]) >= {"get", "post"}
    assert set(schema["paths"]["/api/v1/roles/{id}"]) >= {"get", "patch", "delete"}
