"""Custom roles: per-org permission sets from the registry, assignable wherever a role name is
accepted, resolved from the database on every request (members and API keys alike)."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext

from audit.models import AuditEvent
from station.core.errors import AccessDenied, Conflict, InvalidInput, NotFound
from tenants import context, platform, roles, services
from tenants.authz import Principal, effective_permissions, has_permission
from tenants.models import ApiKey, CustomRole, Environment, Membership
from tenants.permissions import BOUND_KEY_PERMISSIONS, PERMISSIONS, ROLES
from tests.fixtures import SYSTEM, OrgFixture

pytestmark = pytest.mark.django_db

DEPLOYER = ["org.read", "environments.read", "environments.write", "agents.read", "agents.run",
            "members.read"]


def _create(fx: OrgFixture, name: str = "deployer", perms: list[str] | None = None,
            actor: Principal = SYSTEM) -> CustomRole:
    with fx.scope():
        return services.create_custom_role(actor=actor, org=fx.org, name=name,
                                           permissions=perms or DEPLOYER,
                                           description="Ships agents")


def _update(fx: OrgFixture, name: str, perms: list[str], actor: Principal = SYSTEM) -> None:
    with fx.scope():
        services.update_custom_role(actor=actor, org=fx.org, name=name, permissions=perms)


def _events(fx: OrgFixture, action: str) -> list[AuditEvent]:
    with fx.scope():
        return list(AuditEvent.objects.filter(action=action).order_by("sequence"))


# --- the model and its services -------------------------------------------------------------


def test_only_owner_and_admin_manage_roles() -> None:
    # Written out, independently of how ROLES is built.
    assert {name for name, perms in ROLES.items() if "roles.manage" in perms} == {
        "owner", "admin"}
    assert "roles.manage" not in BOUND_KEY_PERMISSIONS


def test_created_role_is_listed_with_its_permissions_and_audited(org_a: OrgFixture) -> None:
    _create(org_a)
    with org_a.scope():
        info = roles.get_role(org_a.org, "deployer")
        assert info is not None and not info.built_in
        assert info.permissions == frozenset(DEPLOYER)
        assert [r.name for r in roles.list_roles(org_a.org)] == [*ROLES, "deployer"]
    (event,) = _events(org_a, "role.created")
    assert event.changes["permissions"] == sorted(DEPLOYER)
    assert event.target_label == "deployer"


@pytest.mark.parametrize("perms, named", [
    (["org.read", "agents.launch"], "agents.launch"),
    (["org.*"], "org.*"),
    (["ORG.READ"], "ORG.READ"),
])
def test_unknown_permission_is_a_field_error_naming_it(
    org_a: OrgFixture, perms: list[str], named: str
) -> None:
    with pytest.raises(InvalidInput) as exc:
        _create(org_a, perms=perms)
    assert named in exc.value.errors["permissions"][0]
    with org_a.scope():
        assert not CustomRole.objects.exists()


@pytest.mark.parametrize("name", sorted(ROLES))
def test_built_in_names_cannot_be_taken(org_a: OrgFixture, name: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        _create(org_a, name=name)
    assert "built-in" in exc.value.errors["name"][0]


@pytest.mark.parametrize("name", ["", "Deployer", "de ployer", "-x", "a" * 51, "x_y"])
def test_malformed_names_are_refused(org_a: OrgFixture, name: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        _create(org_a, name=name)
    assert "name" in exc.value.errors


def test_empty_permission_list_is_refused(org_a: OrgFixture) -> None:
    with pytest.raises(InvalidInput) as exc, org_a.scope():
        services.create_custom_role(actor=SYSTEM, org=org_a.org, name="nothing", permissions=[])
    assert "permissions" in exc.value.errors


def test_duplicate_name_is_a_conflict(org_a: OrgFixture) -> None:
    _create(org_a)
    with pytest.raises(Conflict):
        _create(org_a)


@pytest.mark.parametrize("name", ["owner", "viewer", "admin"])
def test_built_in_roles_are_read_only(org_a: OrgFixture, name: str) -> None:
    with org_a.scope():
        with pytest.raises(Conflict, match="read-only"):
            services.update_custom_role(actor=SYSTEM, org=org_a.org, name=name,
                                        permissions=["org.read"])
        with pytest.raises(Conflict, match="read-only"):
            services.delete_custom_role(actor=SYSTEM, org=org_a.org, name=name)
    assert ROLES["viewer"] == roles.permissions_of(org_a.org.pk, "viewer")


def test_update_records_what_was_added_and_removed(org_a: OrgFixture) -> None:
    _create(org_a)
    _update(org_a, "deployer", [*DEPLOYER[:-1], "runs.read"])
    (event,) = _events(org_a, "role.updated")
    assert event.changes["permissions"] == {"added": ["runs.read"], "removed": ["members.read"]}


def test_managing_roles_needs_roles_manage(org_a: OrgFixture, member: Any) -> None:
    dev = Principal.for_user(member("dev@acme.example", "developer"))
    with pytest.raises(AccessDenied, match=r"roles\.manage"):
        _create(org_a, actor=dev)
    _create(org_a)
    with pytest.raises(AccessDenied, match=r"roles\.manage"):
        _update(org_a, "deployer", ["org.read"], actor=dev)
    with org_a.scope(), pytest.raises(AccessDenied, match=r"roles\.manage"):
        services.delete_custom_role(actor=dev, org=org_a.org, name="deployer")


def test_nobody_defines_a_role_wider_than_themselves(org_a: OrgFixture, member: Any) -> None:
    admin = Principal.for_user(member("admin@acme.example", "admin"))  # lacks billing.manage
    with pytest.raises(AccessDenied, match=r"billing\.manage"):
        _create(org_a, name="payer", perms=["billing.manage"], actor=admin)
    _create(org_a, name="payer", perms=["billing.read"])
    with pytest.raises(AccessDenied, match=r"billing\.manage"):
        _update(org_a, "payer", ["billing.read", "billing.manage"], actor=admin)
    # Nor take away what they do not hold from everyone who holds the role.
    _update(org_a, "payer", ["billing.read", "billing.manage"])
    with pytest.raises(AccessDenied, match=r"billing\.manage"):
        _update(org_a, "payer", ["billing.read"], actor=admin)


def test_deleting_an_assigned_role_is_a_conflict_counting_holders(
    org_a: OrgFixture, member: Any
) -> None:
    _create(org_a)
    user = member("d1@acme.example", "deployer")
    member("d2@acme.example", "deployer")
    org_a.key("deployer", created_by=org_a.owner)
    with org_a.scope():
        with pytest.raises(Conflict) as exc:
            services.delete_custom_role(actor=SYSTEM, org=org_a.org, name="deployer")
        assert "2 members" in exc.value.detail and "1 API keys" in exc.value.detail
        for m in Membership.objects.filter(role="deployer"):
            services.change_member_role(actor=SYSTEM, membership=m, role="viewer")
        for key in ApiKey.objects.filter(role="deployer"):
            services.revoke_api_key(actor=SYSTEM, api_key=key)
        services.set_environment_role(
            actor=SYSTEM, membership=Membership.objects.get(user=user),
            environment=Environment.objects.get(slug="prod"), role="deployer")
        with pytest.raises(Conflict, match="1 environment roles"):
            services.delete_custom_role(actor=SYSTEM, org=org_a.org, name="deployer")
        services.set_environment_role(
            actor=SYSTEM, membership=Membership.objects.get(user=user),
            environment=Environment.objects.get(slug="prod"), role=None)
        services.delete_custom_role(actor=SYSTEM, org=org_a.org, name="deployer")
        assert not CustomRole.objects.exists()
        assert not roles.role_exists(org_a.org, "deployer")
    (event,) = _events(org_a, "role.deleted")
    assert event.changes["permissions"] == sorted(DEPLOYER)


def test_deleting_a_role_mapped_from_an_idp_group_is_a_conflict(org_a: OrgFixture) -> None:
    from station.identity.models import GroupRoleMapping

    _create(org_a)
    with org_a.scope():
        GroupRoleMapping.objects.create(organization=org_a.org, group="eng", role="deployer")
        with pytest.raises(Conflict, match="1 IdP group mappings"):
            services.delete_custom_role(actor=SYSTEM, org=org_a.org, name="deployer")


# --- assignable wherever a role name is accepted ---------------------------------------------


def test_member_with_a_custom_role_holds_exactly_its_permissions(
    org_a: OrgFixture, member: Any
) -> None:
    _create(org_a)
    user = member("d@acme.example", "deployer")
    with org_a.scope():
        assert effective_permissions(Principal.for_user(user), org_a.org) == frozenset(DEPLOYER)


def test_role_change_and_environment_narrowing_accept_custom_roles(
    org_a: OrgFixture, member: Any
) -> None:
    _create(org_a)
    _create(org_a, name="reader", perms=["org.read", "environments.read", "agents.read"])
    user = member("dev@acme.example", "developer")
    with org_a.scope():
        membership = Membership.objects.get(user=user)
        prod = Environment.objects.get(slug="prod")
        services.set_environment_role(actor=SYSTEM, membership=membership, environment=prod,
                                      role="reader")
        fresh = Principal.for_user(user)
        assert has_permission(fresh, "agents.write", org_a.org)
        assert effective_permissions(fresh, org_a.org, prod) == frozenset(
            {"org.read", "environments.read", "agents.read"})
        services.change_member_role(actor=SYSTEM, membership=membership, role="deployer")
        fresh = Principal.for_user(user)
        assert effective_permissions(fresh, org_a.org) == frozenset(DEPLOYER)
        # Narrowing never widens, custom or not.
        assert effective_permissions(fresh, org_a.org, prod) == frozenset(
            {"org.read", "environments.read", "agents.read"})


def test_unknown_role_names_list_the_custom_ones_too(org_a: OrgFixture) -> None:
    _create(org_a)
    with org_a.scope(), pytest.raises(InvalidInput) as exc:
        services.invite_member(actor=SYSTEM, org=org_a.org, email="x@acme.example",
                               role="deployr")
    assert "deployer" in exc.value.errors["role"][0]


def test_a_custom_role_never_counts_as_owner(org_a: OrgFixture, member: Any) -> None:
    _create(org_a, name="everything", perms=sorted(PERMISSIONS))
    member("all@acme.example", "everything")
    with org_a.scope():
        owner = Membership.objects.get(user=org_a.owner)
        with pytest.raises(Conflict, match="last owner"):
            services.change_member_role(actor=SYSTEM, membership=owner, role="everything")
        with pytest.raises(Conflict, match="last owner"):
            services.remove_member(actor=SYSTEM, membership=owner)
        assert not roles.is_owner("everything")


def test_a_holder_of_a_custom_role_cannot_grant_beyond_it(
    org_a: OrgFixture, member: Any
) -> None:
    _create(org_a, name="hr", perms=["org.read", "members.read", "members.manage"])
    hr = Principal.for_user(member("hr@acme.example", "hr"))
    with org_a.scope():
        with pytest.raises(AccessDenied, match="cannot grant"):
            services.invite_member(actor=hr, org=org_a.org, email="x@acme.example",
                                   role="viewer")
        services.invite_member(actor=hr, org=org_a.org, email="y@acme.example", role="hr")


# --- effective permissions follow the role on the very next request ---------------------------


def test_member_loses_access_on_the_next_request(
    org_a: OrgFixture, member: Any, client: Client
) -> None:
    _create(org_a)
    user = member("d@acme.example", "deployer")
    client.force_login(user)
    assert client.get("/o/acme/members/").status_code == 200
    _update(org_a, "deployer", [p for p in DEPLOYER if p != "members.read"])
    assert client.get("/o/acme/members/").status_code == 403
    _update(org_a, "deployer", DEPLOYER)
    assert client.get("/o/acme/members/").status_code == 200


def test_key_created_by_a_custom_role_member_loses_access_on_the_next_request(
    org_a: OrgFixture, member: Any
) -> None:
    _create(org_a, perms=[*DEPLOYER, "apikeys.manage"])
    user = member("d@acme.example", "deployer")
    api = org_a.client_for(org_a.key(created_by=user,
                                     scopes=["environments.read", "environments.write"]))
    assert api.post("/api/v1/environments", {"slug": "qa", "name": "QA"}).status_code == 201
    _update(org_a, "deployer", [p for p in DEPLOYER if p != "environments.write"])
    response = api.post("/api/v1/environments", {"slug": "qa2", "name": "QA 2"})
    assert response.status_code == 403, response.content
    assert api.get("/api/v1/environments").status_code == 200


def test_key_with_a_custom_role_follows_the_role(org_a: OrgFixture) -> None:
    # Made by the owner (who holds everything): only the role itself can take power away.
    _create(org_a)
    api = org_a.client_for(org_a.key("deployer", created_by=org_a.owner))
    assert set(api.get("/api/v1/me").json()["permissions"]) == set(DEPLOYER)
    _update(org_a, "deployer", ["org.read", "environments.read"])
    assert set(api.get("/api/v1/me").json()["permissions"]) == {"org.read", "environments.read"}
    assert api.post("/api/v1/environments", {"slug": "qa", "name": "QA"}).status_code == 403


def test_key_of_a_narrowed_custom_role_creator_in_its_environment(
    org_a: OrgFixture, member: Any
) -> None:
    _create(org_a, perms=["org.read", "environments.read", "agents.read", "agents.write",
                          "apikeys.manage"])
    _create(org_a, name="reader", perms=["org.read", "environments.read", "agents.read"])
    user = member("d@acme.example", "deployer")
    with org_a.scope():
        services.set_environment_role(
            actor=SYSTEM, membership=Membership.objects.get(user=user),
            environment=Environment.objects.get(slug="dev"), role="reader")
    api = org_a.client_for(org_a.key(created_by=user, env="dev",
                                     scopes=["org.read", "agents.read", "agents.write"]))
    assert set(api.get("/api/v1/me").json()["permissions"]) == {"org.read", "agents.read"}
    _update(org_a, "reader", ["org.read", "environments.read"])
    assert api.get("/api/v1/me").json()["permissions"] == ["org.read"]


def test_authentication_returns_custom_role_permissions_in_its_one_call(
    org_a: OrgFixture, member: Any
) -> None:
    _create(org_a, perms=[*DEPLOYER, "apikeys.manage"])
    user = member("d@acme.example", "deployer")
    plaintext = org_a.key("deployer", created_by=user)
    key_id = plaintext.split("_")[1]
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        try:
            found = platform.enter_org_of_api_key(key_id)
            assert found is not None
            principal = Principal.for_api_key(
                found.key, creator_roles=(found.creator_role, found.creator_env_role),
                known_roles=found.custom_roles)
            perms = effective_permissions(principal, found.key.organization_id)
        finally:
            context.clear()  # what the request middleware does
    assert found.custom_roles == {"deployer": frozenset([*DEPLOYER, "apikeys.manage"])}
    assert perms == frozenset([*DEPLOYER, "apikeys.manage"])
    assert not any("tenants_customrole" in q["sql"] for q in queries.captured_queries[1:])


def test_built_in_role_keys_stay_on_the_fast_path(org_a: OrgFixture, member: Any) -> None:
    user = member("a@acme.example", "admin")
    key_id = org_a.key("viewer", created_by=user).split("_")[1]
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        try:
            found = platform.enter_org_of_api_key(key_id)
            assert found is not None and found.custom_roles == {}
            principal = Principal.for_api_key(
                found.key, creator_roles=(found.creator_role, found.creator_env_role))
            perms = effective_permissions(principal, found.key.organization_id)
        finally:
            context.clear()
    assert perms == ROLES["viewer"]
    assert len(queries.captured_queries) == 1


# --- adversarial ------------------------------------------------------------------------------


def test_a_stored_permission_outside_the_registry_grants_nothing(
    org_a: OrgFixture, member: Any
) -> None:
    # Even a row written behind the services' back cannot widen anyone.
    _create(org_a)
    user = member("d@acme.example", "deployer")
    with org_a.scope():
        CustomRole.objects.filter(name="deployer").update(
            permissions=["org.read", "platform.superuser", 7, "org.*"])
        assert effective_permissions(Principal.for_user(user), org_a.org) == {"org.read"}
    api = org_a.client_for(org_a.key("deployer", created_by=org_a.owner))
    assert api.get("/api/v1/me").json()["permissions"] == ["org.read"]


def test_another_orgs_custom_role_is_not_usable_here(
    org_a: OrgFixture, org_b: OrgFixture
) -> None:
    _create(org_b, name="globex-admin", perms=sorted(PERMISSIONS))
    with org_a.scope():
        assert not roles.role_exists(org_a.org, "globex-admin")
        assert roles.permissions_of(org_a.org, "globex-admin") == frozenset()
        for call in (
            lambda: services.invite_member(actor=SYSTEM, org=org_a.org, email="x@a.example",
                                           role="globex-admin"),
            lambda: services.create_api_key(actor=SYSTEM, org=org_a.org, name="k",
                                            role="globex-admin"),
        ):
            with pytest.raises(InvalidInput):
                call()
        with pytest.raises(NotFound):
            services.update_custom_role(actor=SYSTEM, org=org_a.org, name="globex-admin",
                                        permissions=["org.read"])
        with pytest.raises(NotFound):
            services.delete_custom_role(actor=SYSTEM, org=org_a.org, name="globex-admin")
    with org_b.scope():
        assert roles.permissions_of(org_b.org, "globex-admin") == frozenset(PERMISSIONS)


def test_same_name_in_two_orgs_means_each_orgs_own_role(
    org_a: OrgFixture, org_b: OrgFixture
) -> None:
    _create(org_a, perms=["org.read"])
    _create(org_b, perms=sorted(PERMISSIONS))
    key = org_a.key_object(org_a.key("deployer", created_by=org_a.owner))
    with org_a.scope():
        assert effective_permissions(Principal.for_api_key(key), org_a.org) == {"org.read"}
    api = org_a.client_for(org_a.key("deployer", created_by=org_a.owner))
    assert api.get("/api/v1/me").json()["permissions"] == ["org.read"]


def test_environment_bound_key_with_a_custom_role_never_holds_org_administration(
    org_a: OrgFixture,
) -> None:
    _create(org_a, name="boss", perms=sorted(PERMISSIONS))
    api = org_a.client_for(org_a.key("boss", env="dev", created_by=org_a.owner))
    perms = set(api.get("/api/v1/me").json()["permissions"])
    assert perms <= BOUND_KEY_PERMISSIONS
    assert "members.manage" not in perms and "roles.manage" not in perms
    for method, path in [("get", "/api/v1/members"), ("get", "/api/v1/api-keys"),
                         ("post", "/api/v1/roles"), ("get", "/api/v1/audit-events")]:
        assert getattr(api, method)(path, {}).status_code == 403, path

