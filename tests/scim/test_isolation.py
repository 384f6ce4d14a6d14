"""Adversarial: a token reaches its own org only; revoked and forged tokens are refused."""

from __future__ import annotations

from station.scim import tokens
from tenants.models import Membership
from tests.fixtures import SYSTEM
from tests.scim.conftest import okta_user, patch

GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"


def test_token_of_org_a_gets_404_for_org_b_users_and_groups(scim_a, scim_b, org_b):
    b_user = scim_b.post("Users", okta_user("bob@globex.example")).json()["id"]
    b_group = scim_b.post("Groups", {"schemas": [GROUP], "displayName": "B"}).json()["id"]
    for response in (
        scim_a.get(f"Users/{b_user}"),
        scim_a.put(f"Users/{b_user}", okta_user("bob@globex.example")),
        scim_a.patch(f"Users/{b_user}", patch({"op": "replace", "value": {"active": False}})),
        scim_a.delete(f"Users/{b_user}"),
        scim_a.get(f"Groups/{b_group}"),
        scim_a.patch(f"Groups/{b_group}", patch({"op": "replace", "path": "displayName",
                                                 "value": "x"})),
        scim_a.delete(f"Groups/{b_group}"),
    ):
        assert response.status_code == 404
        body = response.json()
        assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
        assert body["status"] == "404"
    # Exactly the answer for an id that never existed.
    ghost = scim_a.get("Users/00000000-0000-0000-0000-000000000000").json()
    assert ghost["detail"].replace("00000000-0000-0000-0000-000000000000", "ID") == \
        scim_a.get(f"Users/{b_user}").json()["detail"].replace(b_user, "ID")
    listed = scim_a.get("Users").json()
    assert b_user not in {r["id"] for r in listed["Resources"]}
    with org_b.scope():
        assert Membership.objects.filter(user__email="bob@globex.example").exists()
    assert scim_b.get(f"Groups/{b_group}").json()["displayName"] == "B"


def test_org_b_user_cannot_be_put_in_org_a_group(scim_a, scim_b):
    b_user = scim_b.post("Users", okta_user("bob@globex.example")).json()["id"]
    response = scim_a.post("Groups", {"schemas": [GROUP], "displayName": "A",
                                      "members": [{"value": b_user}]})
    assert response.status_code == 400
    assert scim_a.get("Groups").json()["totalResults"] == 0  # nothing was created


def test_revoked_token_is_refused(scim_a, org_a):
    assert scim_a.get("Users").status_code == 200
    with org_a.scope():
        from station.scim.models import ScimToken

        row = ScimToken.objects.get()
        tokens.revoke_scim_token(actor=SYSTEM, token=row)
    response = scim_a.get("Users")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]


def test_forged_missing_and_api_keys_are_refused(scim_a, org_a):
    token_id = tokens.parse(scim_a.plaintext)[0]
    forged = f"scim_{token_id}_{'A' * 43}"
    for header in ("", "Bearer", f"Bearer {forged}", f"Basic {scim_a.plaintext}",
                   f"Bearer {org_a.key('owner')}", "Bearer scim_unknownid000_" + "B" * 43):
        response = scim_a.client.get("/scim/v2/Users", HTTP_AUTHORIZATION=header)
        assert response.status_code == 401, header


def test_scim_endpoints_are_not_reachable_with_a_console_session(client, org_a):
    client.force_login(org_a.owner)
    assert client.get("/scim/v2/Users").status_code == 401


def test_token_lookup_opens_one_row_and_clears_its_key(scim_a, scim_b, org_a):
    from django.db import connection, transaction

    from station.scim.models import ScimToken
    from tenants import platform
    from tenants.context import no_org_scope

    token_id = tokens.parse(scim_a.plaintext)[0]
    with transaction.atomic(), no_org_scope():
        assert ScimToken.all_orgs.count() == 0  # no org, no key: RLS shows nothing
        assert platform.enter_org_of_scim_token(token_id) == org_a.org.pk
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('app.scim_token_id', true)")
            assert cursor.fetchone()[0] == ""
        # Scoped to org A now: org B's token is invisible.
        assert ScimToken.all_orgs.count() == 1
        assert platform.enter_org_of_scim_token("nosuchtoken0") is None
