"""Groups over SCIM: membership maps to a role through the org's GroupRoleMapping."""

from __future__ import annotations

from urllib.parse import quote

from tenants.models import Membership
from tests.scim.conftest import okta_user, patch

GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"


def _role(fx, email):
    with fx.scope():
        m = Membership.objects.filter(user__email=email).first()
        return m.role if m else None


def _user(scim, email):
    return scim.post("Users", okta_user(email)).json()["id"]


def _group(scim, name, *members):
    response = scim.post("Groups", {"schemas": [GROUP], "displayName": name,
                                    "members": [{"value": m} for m in members]})
    assert response.status_code == 201, response.content
    return response.json()["id"]


def test_create_group_with_members_applies_mapped_role(scim_a, org_a, map_group):
    map_group(org_a, "Engineering", "developer")
    uid = _user(scim_a, "ada@acme.example")
    gid = _group(scim_a, "Engineering", uid)
    assert _role(org_a, "ada@acme.example") == "developer"
    body = scim_a.get(f"Groups/{gid}").json()
    assert body["displayName"] == "Engineering"
    assert body["members"] == [{"value": uid, "display": "ada@acme.example",
                                "$ref": f"http://testserver/scim/v2/Users/{uid}"}]
    assert scim_a.get(f"Users/{uid}").json()["groups"][0]["display"] == "Engineering"


def test_highest_privilege_mapped_role_wins_and_unmapped_grants_nothing(
        scim_a, org_a, map_group):
    map_group(org_a, "Viewers", "viewer")
    map_group(org_a, "Admins", "admin")
    map_group(org_a, "Ops", "operator")
    uid = _user(scim_a, "ada@acme.example")
    viewers, ops = _group(scim_a, "Viewers", uid), _group(scim_a, "Ops", uid)
    assert _role(org_a, "ada@acme.example") == "operator"
    _group(scim_a, "Unmapped", uid)
    assert _role(org_a, "ada@acme.example") == "operator"
    admins = _group(scim_a, "Admins", uid)
    assert _role(org_a, "ada@acme.example") == "admin"
    # Okta removes a member with a filtered path.
    scim_a.patch(f"Groups/{admins}", patch(
        {"op": "remove", "path": f'members[value eq "{uid}"]'}))
    assert _role(org_a, "ada@acme.example") == "operator"
    # Entra removes with a value list and a capitalised op.
    scim_a.patch(f"Groups/{ops}", patch(
        {"op": "Remove", "path": "members", "value": [{"value": uid}]}))
    assert _role(org_a, "ada@acme.example") == "viewer"
    scim_a.delete(f"Groups/{viewers}")
    # No mapped group left: the default (viewer: the org has no SAML connection).
    assert _role(org_a, "ada@acme.example") == "viewer"


def test_okta_and_entra_add_members(scim_a, org_a, map_group):
    map_group(org_a, "Dev", "developer")
    ada, grace = _user(scim_a, "ada@acme.example"), _user(scim_a, "grace@acme.example")
    gid = _group(scim_a, "Dev")
    # Okta: add with a members path.
    response = scim_a.patch(f"Groups/{gid}", patch(
        {"op": "add", "path": "members", "value": [{"value": ada, "display": "ada"}]}))
    assert response.status_code == 200, response.content
    # Entra: "Add", the same shape.
    scim_a.patch(f"Groups/{gid}", patch(
        {"op": "Add", "path": "members", "value": [{"value": grace}]}))
    assert _role(org_a, "ada@acme.example") == "developer"
    assert _role(org_a, "grace@acme.example") == "developer"
    members = scim_a.get(f"Groups/{gid}?excludedAttributes=members").json()
    assert "members" not in members


def test_rename_re_evaluates_roles(scim_a, org_a, map_group):
    map_group(org_a, "Admins", "admin")
    uid = _user(scim_a, "ada@acme.example")
    gid = _group(scim_a, "Admins", uid)
    assert _role(org_a, "ada@acme.example") == "admin"
    # Okta renames with a path-less replace carrying id and displayName.
    response = scim_a.patch(f"Groups/{gid}", patch(
        {"op": "replace", "value": {"id": gid, "displayName": "Former admins"}}))
    assert response.json()["displayName"] == "Former admins"
    assert _role(org_a, "ada@acme.example") == "viewer"


def test_put_replaces_members(scim_a, org_a, map_group):
    map_group(org_a, "Dev", "developer")
    ada, grace = _user(scim_a, "ada@acme.example"), _user(scim_a, "grace@acme.example")
    gid = _group(scim_a, "Dev", ada)
    response = scim_a.put(f"Groups/{gid}", {"schemas": [GROUP], "displayName": "Dev",
                                           "members": [{"value": grace}]})
    assert response.status_code == 200
    assert [m["value"] for m in response.json()["members"]] == [grace]
    assert _role(org_a, "ada@acme.example") == "viewer"
    assert _role(org_a, "grace@acme.example") == "developer"


def test_filter_and_uniqueness(scim_a):
    _group(scim_a, "Dev")
    flt = quote('displayName eq "Dev"')
    found = scim_a.get(f"Groups?filter={flt}").json()
    assert found["totalResults"] == 1
    duplicate = scim_a.post("Groups", {"schemas": [GROUP], "displayName": "Dev"})
    assert duplicate.status_code == 409 and duplicate.json()["scimType"] == "uniqueness"


def test_owner_is_never_demoted_by_groups(scim_a, org_a, map_group):
    map_group(org_a, "Viewers", "viewer")
    flt = quote(f'userName eq "{org_a.owner.email}"')
    owner = scim_a.get(f"Users?filter={flt}").json()["Resources"][0]["id"]
    gid = _group(scim_a, "Viewers", owner)
    scim_a.delete(f"Groups/{gid}")
    assert _role(org_a, org_a.owner.email) == "owner"


def test_member_predating_scim_keeps_role_until_a_mapped_group(scim_a, org_a, map_group):
    org_a.add_member("old@acme.example", "developer")
    flt = quote('userName eq "old@acme.example"')
    uid = scim_a.get(f"Users?filter={flt}").json()["Resources"][0]["id"]
    scim_a.patch(f"Users/{uid}", patch({"op": "replace", "path": "displayName", "value": "O"}))
    assert _role(org_a, "old@acme.example") == "developer"
    map_group(org_a, "Ops", "operator")
    gid = _group(scim_a, "Ops", uid)
    assert _role(org_a, "old@acme.example") == "operator"
    scim_a.delete(f"Groups/{gid}")
    assert _role(org_a, "old@acme.example") == "viewer"  # now managed: the default


def test_saml_default_role_blank_means_no_access_without_a_mapped_group(
        scim_a, org_a, map_group):
    from station.identity.models import SamlConnection

    with org_a.scope():
        SamlConnection.objects.create(idp_entity_id="https://idp.example", default_role="",
                                      idp_sso_url="https://idp.example/sso",
                                      idp_x509cert="MIIB")
    map_group(org_a, "Dev", "developer")
    uid = _user(scim_a, "ada@acme.example")
    assert _role(org_a, "ada@acme.example") is None
    gid = _group(scim_a, "Dev", uid)
    assert _role(org_a, "ada@acme.example") == "developer"
    scim_a.patch(f"Groups/{gid}", patch({"op": "remove", "path": "members"}))
    assert _role(org_a, "ada@acme.example") is None


def test_provisioning_is_audited_with_the_token_as_actor(scim_a, org_a, map_group):
    from audit.models import AuditEvent
    from station.scim.models import ScimToken

    map_group(org_a, "Dev", "developer")
    uid = _user(scim_a, "ada@acme.example")
    gid = _group(scim_a, "Dev", uid)
    scim_a.patch(f"Groups/{gid}", patch({"op": "replace", "path": "displayName",
                                         "value": "Developers"}))
    scim_a.delete(f"Groups/{gid}")
    with org_a.scope():
        token = ScimToken.objects.get()
        events = list(AuditEvent.objects.filter(actor_id=str(token.pk)).order_by("sequence")
                      .values_list("action", "changes"))
    actions = [a for a, _ in events]
    assert actions == ["scim.user_created", "member.role_changed", "scim.group_created",
                       "member.role_changed", "scim.group_updated", "scim.group_deleted"]
    created = dict(events)["scim.user_created"]
    assert created["userName"] == "ada@acme.example"
    assert created["membership_created"] == "viewer" and created["account_created"] is True


def test_a_group_mapped_to_a_custom_role_grants_it_by_its_permissions(scim_a, org_a,
                                                                        map_group):
    from tenants import services as tenant_services
    from tests.fixtures import SYSTEM

    with org_a.scope():
        tenant_services.create_custom_role(
            actor=SYSTEM, org=org_a.org, name="deployer",
            permissions=["org.read", "environments.read", "agents.read", "agents.run",
                         "runs.read", "runs.cancel", "runs.approve", "tools.read",
                         "secrets.read", "variables.read", "roles.read", "members.read"])
    map_group(org_a, "Viewers", "viewer")
    map_group(org_a, "Deployers", "deployer")
    uid = _user(scim_a, "ada@acme.example")
    _group(scim_a, "Viewers", uid)
    assert _role(org_a, "ada@acme.example") == "viewer"
    _group(scim_a, "Deployers", uid)  # more permissions than viewer: it wins
    assert _role(org_a, "ada@acme.example") == "deployer"


def test_changing_or_deleting_a_mapping_reapplies_roles_of_scim_members_at_once(
        scim_a, org_a, map_group):
    """The mapping is the admin's, the membership the IdP's: a mapping edit must not wait for
    the IdP's next push to take effect, and its audit event says whose access it changed."""
    from audit.models import AuditEvent
    from station.identity import services as identity
    from station.identity.models import GroupRoleMapping
    from tests.fixtures import SYSTEM

    map_group(org_a, "Eng", "developer")
    map_group(org_a, "Everyone", "viewer")
    ada, grace = _user(scim_a, "ada@acme.example"), _user(scim_a, "grace@acme.example")
    _group(scim_a, "Eng", ada)
    _group(scim_a, "Everyone", ada, grace)
    assert (_role(org_a, "ada@acme.example"), _role(org_a, "grace@acme.example")) == (
        "developer", "viewer")

    map_group(org_a, "Eng", "operator")  # a weaker role than before: ada follows at once
    assert _role(org_a, "ada@acme.example") == "operator"
    assert _role(org_a, "grace@acme.example") == "viewer"  # not in Eng: untouched
    with org_a.scope():
        event = AuditEvent.objects.filter(action="identity.group_mapping_set").latest("sequence")
        assert event.changes["access"] == {
            "ada@acme.example": {"role": {"from": "developer", "to": "operator"}}}
        identity.delete_group_mapping(actor=SYSTEM,
                                      mapping=GroupRoleMapping.objects.get(group="Eng"))
    assert _role(org_a, "ada@acme.example") == "viewer"  # only Everyone maps now
    with org_a.scope():
        event = AuditEvent.objects.filter(
            action="identity.group_mapping_deleted").latest("sequence")
        assert event.target_id  # the deleted mapping is still named
        assert event.changes["access"] == {
            "ada@acme.example": {"role": {"from": "operator", "to": "viewer"}}}
