"""Deactivating or deleting a user ends their access at once: membership, console sessions
(in every org: sessions are per person) and the API keys they created in this org."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from django.contrib.sessions.models import Session
from django.test import Client

from audit.models import AuditEvent
from tests.scim.conftest import okta_user, patch


def _provision(scim, fx, email, role="admin"):  # admins may make API keys
    fx.add_member(email, role)
    flt = quote(f'userName eq "{email}"')
    return scim.get(f"Users?filter={flt}").json()["Resources"][0]["id"]


@pytest.mark.parametrize("how", ["okta_patch", "entra_patch", "put", "delete"])
def test_deactivation_ends_sessions_and_api_keys(scim_a, org_a, how):
    uid = _provision(scim_a, org_a, "dev@acme.example")
    from tenants.models import User

    user = User.objects.get(email="dev@acme.example")
    api_key = org_a.key("developer", created_by=user)
    key_client = org_a.client_for(api_key)
    assert key_client.get("/api/v1/agents").status_code == 200
    console = Client()
    console.force_login(user)
    assert console.get(f"/o/{org_a.org.slug}/environments/").status_code == 200
    bystander = Client()
    bystander.force_login(org_a.owner)

    if how == "okta_patch":
        response = scim_a.patch(f"Users/{uid}",
                                patch({"op": "replace", "value": {"active": False}}))
    elif how == "entra_patch":
        response = scim_a.patch(f"Users/{uid}",
                                patch({"op": "Replace", "path": "active", "value": "False"}))
    elif how == "put":
        response = scim_a.put(f"Users/{uid}", {**okta_user("dev@acme.example"), "active": False})
    else:
        response = scim_a.delete(f"Users/{uid}")
    assert response.status_code in (200, 204), response.content

    # The very next request with the key is refused, and the key is revoked for good.
    assert key_client.get("/api/v1/agents").status_code == 401
    assert org_a.key_object(api_key).revoked_at is not None
    # The console session is gone: the next page load goes to sign-in.
    page = console.get(f"/o/{org_a.org.slug}/environments/")
    assert page.status_code == 302 and "/accounts/login" in page["Location"]
    assert not any(s.get_decoded().get("_auth_user_id") == str(user.pk)
                   for s in Session.objects.all())
    from station.accounts.models import UserSession

    assert not UserSession.objects.filter(user=user).exists()  # the sessions page agrees
    # Other people's sessions are untouched.
    assert bystander.get(f"/o/{org_a.org.slug}/environments/").status_code == 200


def test_deactivation_is_audited_with_the_token_as_actor(scim_a, org_a):
    uid = _provision(scim_a, org_a, "dev@acme.example")
    from tenants.models import User

    user = User.objects.get(email="dev@acme.example")
    org_a.key("developer", created_by=user)
    Client().force_login(user)
    scim_a.patch(f"Users/{uid}", patch({"op": "replace", "value": {"active": False}}))
    with org_a.scope():
        from station.scim.models import ScimToken

        token = ScimToken.objects.get()
        events = {e.action: e for e in AuditEvent.objects.filter(actor_id=str(token.pk))}
    assert {"scim.user_deactivated", "member.removed", "apikey.revoked"} <= set(events)
    deactivated = events["scim.user_deactivated"]
    assert deactivated.actor_label == f"SCIM token {token.display}"
    assert deactivated.changes["membership_removed"] == "admin"
    assert deactivated.changes["sessions_ended"] == 1
    assert len(deactivated.changes["api_keys_revoked"]) == 1


def test_deactivation_in_one_org_keeps_membership_and_keys_in_another(
        scim_a, org_a, org_b):
    uid = _provision(scim_a, org_a, "both@example.com")
    org_b.add_member("both@example.com", "admin")
    from tenants.models import User

    user = User.objects.get(email="both@example.com")
    b_key = org_b.key("developer", created_by=user)
    scim_a.patch(f"Users/{uid}", patch({"op": "replace", "value": {"active": False}}))
    assert org_b.client_for(b_key).get("/api/v1/agents").status_code == 200
    assert org_b.key_object(b_key).revoked_at is None
    assert User.objects.get(pk=user.pk).is_active
