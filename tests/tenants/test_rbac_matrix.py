"""Role × permission matrix, per-environment narrowing, API key scopes, and the permission
each API route demands (read from the views' permission_map, so new routes are covered)."""

from __future__ import annotations

from typing import Any

import pytest

from tenants import services
from tenants.authz import Principal, authorize, effective_permissions, has_permission
from tenants.models import Environment, Membership
from tenants.permissions import PERMISSIONS, ROLES, UnknownPermission
from tests.api.routes import Route, api_routes, route_id
from tests.fixtures import SYSTEM, OrgFixture

pytestmark = pytest.mark.django_db

ALL = frozenset(PERMISSIONS)
READS = {
    "org.read", "environments.read", "members.read", "roles.read", "apikeys.read",
    "agents.read", "runs.read", "tools.read", "secrets.read", "variables.read",
}
# The specification, written out independently of tenants.permissions.ROLES.
# `roles.manage` (custom roles) belongs to owner and admin only: it is in ALL, not in READS.
EXPECTED: dict[str, frozenset[str]] = {
    "owner": ALL,
    "admin": ALL - {"billing.manage"},
    "developer": frozenset(READS | {"environments.write", "agents.write", "agents.run",
                                    "runs.cancel", "tools.manage", "secrets.write",
                                    "variables.write"}),
    "operator": frozenset(READS | {"agents.run", "runs.cancel", "runs.approve"}),
    "viewer": frozenset(READS),
    "auditor": frozenset(READS | {"audit.read"}),
    "billing": frozenset({"org.read", "billing.read", "billing.manage"}),
}


def test_every_built_in_role_is_specified() -> None:
    assert set(ROLES) == set(EXPECTED)


def test_roles_manage_is_owner_and_admin_only() -> None:
    assert {role for role, perms in EXPECTED.items() if "roles.manage" in perms} == {
        "owner", "admin"}


@pytest.mark.parametrize("permission", sorted(PERMISSIONS))
@pytest.mark.parametrize("role", sorted(EXPECTED))
def test_role_grants_exactly_its_permissions(
    role: str, permission: str, org_a: OrgFixture, member: Any
) -> None:
    user = org_a.owner if role == "owner" else member(f"{role}@acme.example", role)
    principal = Principal.for_user(user)
    with org_a.scope():
        allowed = has_permission(principal, permission, org_a.org)
        if permission in EXPECTED[role]:
            assert allowed
            authorize(principal, permission, org_a.org)
        else:
            assert not allowed
            with pytest.raises(services.AccessDenied):
                authorize(principal, permission, org_a.org)


def test_non_member_has_no_permissions(org_a: OrgFixture, org_b: OrgFixture) -> None:
    with org_a.scope():
        assert effective_permissions(Principal.for_user(org_b.owner), org_a.org) == frozenset()


def test_inactive_member_has_no_permissions(org_a: OrgFixture) -> None:
    org_a.owner.is_active = False
    org_a.owner.save(update_fields=["is_active"])
    with org_a.scope():
        assert effective_permissions(Principal.for_user(org_a.owner), org_a.org) == frozenset()


@pytest.mark.parametrize("permission", ["agents.launch", "", "ORG.READ", "org.*"])
def test_undeclared_permission_raises(permission: str, org_a: OrgFixture) -> None:
    with org_a.scope():
        with pytest.raises(UnknownPermission):
            authorize(SYSTEM, permission, org_a.org)
        with pytest.raises(UnknownPermission):
            has_permission(Principal.for_user(org_a.owner), permission, org_a.org)


# --- per-environment narrowing ------------------------------------------------------------


def test_environment_role_narrows_a_member_in_that_environment_only(
    org_a: OrgFixture, member: Any
) -> None:
    user = member("dev@acme.example", "developer")
    with org_a.scope():
        prod, dev = Environment.objects.get(slug="prod"), Environment.objects.get(slug="dev")
        membership = Membership.objects.get(user=user)
        services.set_environment_role(actor=SYSTEM, membership=membership,
                                      environment=prod, role="viewer")
        principal = Principal.for_user(user)
        assert not has_permission(principal, "agents.write", org_a.org, prod)
        assert has_permission(principal, "agents.read", org_a.org, prod)
        assert has_permission(principal, "agents.write", org_a.org, dev)
        assert has_permission(principal, "agents.write", org_a.org)


def test_environment_role_never_widens_a_membership(org_a: OrgFixture, member: Any) -> None:
    user = member("viewer@acme.example", "viewer")
    with org_a.scope():
        prod = Environment.objects.get(slug="prod")
        membership = Membership.objects.get(user=user)
        services.set_environment_role(actor=SYSTEM, membership=membership,
                                      environment=prod, role="admin")
        assert effective_permissions(Principal.for_user(user), org_a.org, prod) == EXPECTED[
            "viewer"]


def test_admin_cannot_narrow_an_owner(org_a: OrgFixture) -> None:
    # Narrowing takes permissions away; like a role change, only within the actor's own.
    client = org_a.client("admin", created_by=org_a.owner)
    with org_a.scope():
        owner = Membership.objects.get(user=org_a.owner)
    response = client.post(f"/api/v1/members/{owner.pk}/environment-role",
                           {"environment": "prod", "role": "viewer"})
    assert response.status_code == 403, response.content
    with org_a.scope():
        assert not owner.environment_roles.exists()


# --- API keys -----------------------------------------------------------------------------


def test_key_scopes_are_intersected_with_the_creators_current_permissions(
    org_a: OrgFixture, member: Any
) -> None:
    creator = member("admin@acme.example", "admin")
    client = org_a.client_for(
        org_a.key(created_by=creator, scopes=["environments.read", "environments.write"]))
    assert client.post("/api/v1/environments", {"slug": "qa", "name": "QA"}).status_code == 201

    with org_a.scope():
        services.change_member_role(actor=SYSTEM, membership=Membership.objects.get(user=creator),
                                    role="viewer")
    response = client.post("/api/v1/environments", {"slug": "qa2", "name": "QA 2"})
    assert response.status_code == 403, response.content
    assert client.get("/api/v1/environments").status_code == 200  # still within viewer


def test_key_of_a_removed_creator_has_no_permissions(org_a: OrgFixture, member: Any) -> None:
    creator = member("admin@acme.example", "admin")
    client = org_a.client_for(org_a.key("viewer", created_by=creator))
    assert client.get("/api/v1/environments").status_code == 200
    with org_a.scope():
        services.remove_member(actor=SYSTEM, membership=Membership.objects.get(user=creator))
    assert client.get("/api/v1/environments").status_code == 403


def test_key_never_exceeds_its_scopes(org_a: OrgFixture) -> None:
    client = org_a.client("viewer")
    assert client.post("/api/v1/environments", {"slug": "qa", "name": "QA"}).status_code == 403
    me = client.get("/api/v1/me").json()
    assert set(me["permissions"]) == EXPECTED["viewer"]


def test_environment_bound_key_has_no_permissions_in_other_environments(
    org_a: OrgFixture,
) -> None:
    plaintext = org_a.key("developer", env="dev", created_by=org_a.owner)
    key = org_a.key_object(plaintext)
    principal = Principal.for_api_key(key)
    with org_a.scope():
        dev, prod = Environment.objects.get(slug="dev"), Environment.objects.get(slug="prod")
        assert has_permission(principal, "agents.write", org_a.org, dev)
        assert effective_permissions(principal, org_a.org, prod) == frozenset()
    client = org_a.client_for(plaintext)
    envs = client.get("/api/v1/environments").json()["results"]
    assert [e["slug"] for e in envs] == ["dev"]
    assert client.get(f"/api/v1/environments/{prod.pk}").status_code == 404


def test_environment_bound_key_cannot_mint_keys(org_a: OrgFixture) -> None:
    # Key management is org administration: never a bound key's, not even for its own env.
    client = org_a.client("admin", env="dev", created_by=org_a.owner)
    body = {"name": "k", "scopes": ["environments.read"]}
    assert client.post("/api/v1/api-keys", {**body, "environment": "prod"}).status_code == 403
    assert client.post("/api/v1/api-keys", body).status_code == 403
    assert client.post("/api/v1/api-keys", {**body, "environment": "dev"}).status_code == 403


@pytest.mark.parametrize("method, path", [
    ("get", "/api/v1/members"), ("get", "/api/v1/api-keys"), ("get", "/api/v1/audit-events"),
    ("post", "/api/v1/environments"), ("patch", "/api/v1/organization"),
])
def test_environment_bound_key_holds_no_org_administration(
    org_a: OrgFixture, method: str, path: str
) -> None:
    client = org_a.client("owner", env="dev", created_by=org_a.owner)
    assert getattr(client, method)(path, {}).status_code == 403
    assert client.get("/api/v1/environments").status_code == 200  # its own env stays visible


def test_key_from_another_org_has_no_permissions_here(
    org_a: OrgFixture, org_b: OrgFixture
) -> None:
    key = org_b.key_object(org_b.key("owner"))
    with org_a.scope():
        assert effective_permissions(Principal.for_api_key(key), org_a.org) == frozenset()


# --- every API route demands its permission -------------------------------------------------

GUARDED = [r for r in api_routes() if r.permission is not None]


def test_every_api_route_declares_a_permission() -> None:
    unguarded = [str(r) for r in api_routes() if r.permission is None]
    assert unguarded == []


def _target_pk(route: Route, org: OrgFixture) -> object:
    if route.model is None:
        return "viewer"  # roles are named, not stored
    with org.scope():
        qs = route.model.objects.all()
        if route.model is Membership:
            qs = qs.exclude(role="owner")
        if route.model is Environment:
            qs = qs.exclude(slug="dev")
        row = qs.first()
    assert row is not None, f"no {route.model.__name__} to aim {route} at"
    return row.pk


def _call(client: Any, route: Route, pk: object) -> Any:
    call = getattr(client, route.method)
    if route.method in {"post", "patch", "put"}:
        return call(route.path(pk), {}, format="json")
    return call(route.path(pk))


@pytest.mark.parametrize("route", GUARDED, ids=route_id)
def test_key_lacking_the_routes_permission_gets_403(route: Route, seeded_a: Any) -> None:
    org = seeded_a.fx
    assert route.permission is not None
    client = org.client(scopes=sorted(ALL - {route.permission}))
    response = _call(client, route, _target_pk(route, org))
    assert response.status_code == 403, response.content
    assert route.permission in response.json()["detail"]


@pytest.mark.parametrize("route", GUARDED, ids=route_id)
def test_key_holding_the_routes_permission_is_not_refused(route: Route, seeded_a: Any) -> None:
    org = seeded_a.fx
    assert route.permission is not None
    response = _call(org.client(scopes=[route.permission]), route, _target_pk(route, org))
    # Bodies are empty, so writes may answer 422 (validation) or 403 from a service's
    # no-escalation guard (granting what the key lacks) or for a further permission the
    # service needs (an environment export also needs secrets.read), never for the route's.
    assert response.status_code in {200, 201, 202, 204, 403, 409, 422}, response.content
    if response.status_code == 403:
        detail = response.json()["detail"]
        assert "cannot grant" in detail or (
            "permission" in detail and f"'{route.permission}'" not in detail
        ), response.content
