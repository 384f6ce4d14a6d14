"""Users over SCIM in the shapes Okta and Entra send."""

from __future__ import annotations

from urllib.parse import quote

from tenants.models import Membership, User
from tests.scim.conftest import entra_user, okta_user, patch


def eq(attribute, value):
    return quote(f'{attribute} eq "{value}"')


def _role(fx, email):
    with fx.scope():
        m = Membership.objects.filter(user__email=email).first()
        return m.role if m else None


def test_okta_create_makes_account_and_membership(scim_a, org_a):
    response = scim_a.post("Users", okta_user("ada@acme.example"))
    assert response.status_code == 201, response.content
    assert response["Content-Type"] == "application/scim+json"
    body = response.json()
    assert body["userName"] == "ada@acme.example"
    assert body["active"] is True
    assert body["name"]["givenName"] == "Ada"
    assert body["externalId"] == "00u1abcd"
    assert response["Location"].endswith(f"/scim/v2/Users/{body['id']}")
    assert "password" not in body
    assert _role(org_a, "ada@acme.example") == "viewer"  # no SAML connection, no mapped group


def test_entra_create_accepts_enterprise_extension_and_title(scim_a, org_a):
    response = scim_a.post("Users", entra_user("grace@acme.example"))
    assert response.status_code == 201, response.content
    assert response.json()["name"]["formatted"] == "Grace Hopper"


def test_filter_by_username_finds_existing_members_too(scim_a, org_a):
    scim_a.post("Users", okta_user("ada@acme.example"))
    flt = quote('userName eq "ADA@acme.example"')
    body = scim_a.get(f"Users?filter={flt}&startIndex=1&count=100").json()
    assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:ListResponse"]
    assert body["totalResults"] == 1
    assert body["Resources"][0]["userName"] == "ada@acme.example"
    # The owner invited before SCIM is visible, so an IdP can match instead of duplicating.
    owner = scim_a.get(f"Users?filter={eq('userName', org_a.owner.email)}").json()
    assert owner["totalResults"] == 1
    empty = scim_a.get(f"Users?filter={eq('userName', 'nobody@x.example')}").json()
    assert empty["totalResults"] == 0 and empty["Resources"] == []


def test_pagination(scim_a):
    for i in range(5):
        scim_a.post("Users", okta_user(f"u{i}@acme.example"))
    page = scim_a.get("Users?startIndex=2&count=2").json()
    assert page["totalResults"] == 6  # five plus the owner
    assert page["startIndex"] == 2 and page["itemsPerPage"] == 2
    assert len(page["Resources"]) == 2
    assert scim_a.get("Users?count=0").json()["Resources"] == []


def test_unsupported_filter_is_invalid_filter(scim_a):
    for flt in ['userName co "ada"', 'title eq "x"', "garbage"]:
        response = scim_a.get(f"Users?filter={quote(flt)}")
        assert response.status_code == 400
        body = response.json()
        assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
        assert body["scimType"] == "invalidFilter" and body["status"] == "400"


def test_duplicate_username_is_409_uniqueness(scim_a, org_a):
    scim_a.post("Users", okta_user("ada@acme.example"))
    response = scim_a.post("Users", okta_user("ada@acme.example"))
    assert response.status_code == 409
    assert response.json()["scimType"] == "uniqueness"
    existing_member = scim_a.post("Users", okta_user(org_a.owner.email))
    assert existing_member.status_code == 409


def test_username_must_be_an_email(scim_a):
    response = scim_a.post("Users", {**okta_user("x@acme.example"), "userName": "not-an-email"})
    assert response.status_code == 400
    assert response.json()["scimType"] == "invalidValue"


def test_get_put_and_username_is_immutable(scim_a):
    uid = scim_a.post("Users", okta_user("ada@acme.example")).json()["id"]
    assert scim_a.get(f"Users/{uid}").json()["userName"] == "ada@acme.example"
    replaced = scim_a.put(f"Users/{uid}", okta_user("ada@acme.example", given="Augusta"))
    assert replaced.status_code == 200
    assert replaced.json()["name"]["givenName"] == "Augusta"
    renamed = scim_a.put(f"Users/{uid}", okta_user("other@acme.example"))
    assert renamed.status_code == 400
    assert renamed.json()["scimType"] == "mutability"


def test_user_of_another_org_is_joined_never_modified(scim_a, org_a, org_b):
    org_b.add_member("shared@globex.example", "developer")
    before = User.objects.get(email="shared@globex.example")
    response = scim_a.post("Users", okta_user("shared@globex.example", given="Renamed"))
    assert response.status_code == 201
    after = User.objects.get(email="shared@globex.example")
    assert (after.pk, after.name, after.email, after.is_active) == (
        before.pk, before.name, before.email, before.is_active)
    assert _role(org_a, "shared@globex.example") == "viewer"
    assert _role(org_b, "shared@globex.example") == "developer"
    uid = response.json()["id"]
    scim_a.patch(f"Users/{uid}", patch({"op": "replace", "value": {"active": False}}))
    assert _role(org_a, "shared@globex.example") is None
    assert _role(org_b, "shared@globex.example") == "developer"


def test_okta_deactivate_shape(scim_a, org_a):
    uid = scim_a.post("Users", okta_user("ada@acme.example")).json()["id"]
    response = scim_a.patch(f"Users/{uid}", patch({"op": "replace", "value": {"active": False}}))
    assert response.status_code == 200, response.content
    assert response.json()["active"] is False
    assert _role(org_a, "ada@acme.example") is None
    # Still a SCIM resource the IdP can read and reactivate.
    assert scim_a.get(f"Users/{uid}").json()["active"] is False
    scim_a.patch(f"Users/{uid}", patch({"op": "replace", "value": {"active": True}}))
    assert _role(org_a, "ada@acme.example") == "viewer"


def test_entra_patch_capitalised_ops_and_string_booleans(scim_a, org_a):
    uid = scim_a.post("Users", entra_user("grace@acme.example")).json()["id"]
    response = scim_a.patch(f"Users/{uid}", patch(
        {"op": "Replace", "path": "displayName", "value": "Amazing Grace"},
        {"op": "Replace", "path": "name.givenName", "value": "G."},
        {"op": "Add", "path": "emails[type eq \"work\"].value", "value": "grace@acme.example"},
        {"op": "Replace", "path":
         "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
         "value": "Ops"},
        {"op": "Replace", "path": "active", "value": "False"},
    ))
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["displayName"] == "Amazing Grace"
    assert body["name"]["givenName"] == "G."
    assert body["active"] is False
    assert _role(org_a, "grace@acme.example") is None
    scim_a.patch(f"Users/{uid}", patch({"op": "Replace", "path": "active", "value": "True"}))
    assert _role(org_a, "grace@acme.example") == "viewer"


def test_bad_patches_change_nothing(scim_a, org_a):
    uid = scim_a.post("Users", okta_user("ada@acme.example")).json()["id"]
    bad = [
        patch({"op": "replace", "path": "active", "value": "maybe"}),
        patch({"op": "replace", "path": "displayName", "value": "X"},
              {"op": "replace", "path": "nonsense", "value": 1}),
        patch({"op": "move", "path": "active", "value": False}),
        patch({"op": "add", "path": "groups", "value": [{"value": "x"}]}),
        {"Operations": []},
    ]
    for body in bad:
        response = scim_a.patch(f"Users/{uid}", body)
        assert response.status_code == 400, body
        assert response.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    current = scim_a.get(f"Users/{uid}").json()
    assert current["displayName"] == "Ada Lovelace" and current["active"] is True


def test_delete_removes_membership_and_resource(scim_a, org_a):
    uid = scim_a.post("Users", okta_user("ada@acme.example")).json()["id"]
    assert scim_a.delete(f"Users/{uid}").status_code == 204
    assert _role(org_a, "ada@acme.example") is None
    assert scim_a.get(f"Users/{uid}").status_code == 404
    assert User.objects.filter(email="ada@acme.example").exists()  # the account is global


def test_last_owner_cannot_be_deprovisioned(scim_a, org_a):
    flt = quote(f'userName eq "{org_a.owner.email}"')
    uid = scim_a.get(f"Users?filter={flt}").json()["Resources"][0]["id"]
    response = scim_a.patch(f"Users/{uid}", patch({"op": "replace", "value": {"active": False}}))
    assert response.status_code == 409
    assert _role(org_a, org_a.owner.email) == "owner"
    assert scim_a.get(f"Users/{uid}").json()["active"] is True  # rolled back
