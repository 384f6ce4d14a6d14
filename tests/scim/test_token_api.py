"""SCIM tokens through the REST API (`/api/v1/scim-tokens`): `org.manage` only, created and
revoked by the console's services (same audit events), the plaintext in the create response
and nowhere else."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from audit.models import AuditEvent
from station.scim.models import ScimToken
from tenants.models import IdempotencyRecord
from tests.fixtures import OrgFixture
from tests.scim.conftest import ScimClient, scim_client_for

pytestmark = pytest.mark.django_db


def _events(fx: OrgFixture, prefix: str = "scim.token_") -> list[AuditEvent]:
    with fx.scope():
        return list(AuditEvent.objects.filter(action__startswith=prefix).order_by("sequence"))


def test_create_shows_the_token_once_and_it_works(org_a: OrgFixture) -> None:
    plaintext = org_a.key("owner")
    key = org_a.key_object(plaintext)
    client = org_a.client_for(plaintext)
    created = client.post("/api/v1/scim-tokens", {"name": "Okta"})
    assert created.status_code == 201, created.content
    body = created.json()
    token = body["token"]
    assert token.startswith("scim_") and body["prefix"].endswith(token[-4:])
    # scim_<id>_<secret>; the secret (token_urlsafe) may itself contain "_".
    secret = token.split("_", 2)[2]
    assert len(secret) >= 32
    assert body["name"] == "Okta" and body["revoked_at"] is None
    # The IdP can use it at once.
    scim = ScimClient(org_a, token, Client())
    assert scim.get("Users").status_code == 200
    # Never again: not in the list, the detail, the audit log or the database.
    listed = client.get("/api/v1/scim-tokens").json()
    assert [t["id"] for t in listed["results"]] == [body["id"]]
    detail = client.get(f"/api/v1/scim-tokens/{body['id']}")
    for response in (client.get("/api/v1/scim-tokens"), detail):
        assert token not in response.content.decode()
        assert secret not in response.content.decode()
    assert "token" not in detail.json()
    (event,) = _events(org_a)
    assert event.action == "scim.token_created"
    assert (event.actor_type, event.actor_id) == ("api_key", str(key.pk))
    assert event.target_id == body["id"]
    assert secret not in json.dumps(event.changes)
    with org_a.scope():
        row = ScimToken.objects.get(pk=body["id"])
    assert secret not in (row.secret_hash, row.name)


def test_an_idempotent_replay_never_shows_the_token_again(org_a: OrgFixture) -> None:
    client = org_a.client("owner")
    first = client.post("/api/v1/scim-tokens", {"name": "Okta"}, HTTP_IDEMPOTENCY_KEY="s-1")
    again = client.post("/api/v1/scim-tokens", {"name": "Okta"}, HTTP_IDEMPOTENCY_KEY="s-1")
    assert first.status_code == 201 and "token" in first.json()
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["token"] is None
    with org_a.scope():
        stored = json.dumps([r.response_body for r in IdempotencyRecord.objects.all()])
    assert first.json()["token"] not in stored
    with org_a.scope():
        assert ScimToken.objects.count() == 1


def test_revoke_stops_the_token_and_is_audited(org_a: OrgFixture) -> None:
    client = org_a.client("admin")
    body = client.post("/api/v1/scim-tokens", {"name": "Entra"}).json()
    revoked = client.post(f"/api/v1/scim-tokens/{body['id']}/revoke")
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None and "token" not in revoked.json()
    assert ScimClient(org_a, body["token"], Client()).get("Users").status_code == 401
    # Revoking again is a no-op: one event.
    assert client.post(f"/api/v1/scim-tokens/{body['id']}/revoke").status_code == 200
    assert [e.action for e in _events(org_a)] == ["scim.token_created", "scim.token_revoked"]


@pytest.mark.parametrize("role", ["developer", "operator", "viewer", "auditor", "billing"])
def test_without_org_manage_tokens_are_neither_listed_nor_made(org_a: OrgFixture,
                                                              role: str) -> None:
    client = org_a.client(role)
    assert client.get("/api/v1/scim-tokens").status_code == 403
    assert client.post("/api/v1/scim-tokens", {"name": "Okta"}).status_code == 403
    with org_a.scope():
        assert ScimToken.objects.count() == 0
    assert _events(org_a) == []


@pytest.mark.parametrize("body", [{}, {"name": "   "}, {"name": "x" * 201}])
def test_bad_names_are_refused(org_a: OrgFixture, body: dict[str, Any]) -> None:
    response = org_a.client("owner").post("/api/v1/scim-tokens", body, format="json")
    assert response.status_code == 422, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    with org_a.scope():
        assert ScimToken.objects.count() == 0


def test_another_orgs_token_is_a_404_and_stays_usable(org_a: OrgFixture,
                                                      org_b: OrgFixture) -> None:
    theirs = org_b.client("owner").post("/api/v1/scim-tokens", {"name": "Okta"}).json()
    client = org_a.client("owner")
    assert client.get(f"/api/v1/scim-tokens/{theirs['id']}").status_code == 404
    assert client.post(f"/api/v1/scim-tokens/{theirs['id']}/revoke").status_code == 404
    assert client.get("/api/v1/scim-tokens").json()["results"] == []
    assert ScimClient(org_b, theirs["token"], Client()).get("Users").status_code == 200


def test_the_schema_documents_the_routes() -> None:
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    paths = schema["paths"]
    assert set(paths["/api/v1/scim-tokens"]) >= {"get", "post"}
    assert "post" in paths["/api/v1/scim-tokens/{id}/revoke"]
    created = schema["components"]["schemas"]["ScimTokenCreated"]["properties"]
    assert "token" in created
    assert "token" not in schema["components"]["schemas"]["ScimToken"]["properties"]


@pytest.mark.parametrize("end", ["revoked", "expired"])
def test_a_token_made_by_an_api_key_lives_no_longer_than_that_key(
        org_a: OrgFixture, end: str) -> None:
    """A key must not mint a credential that outlives it (as keys made by keys cannot)."""
    from datetime import timedelta

    from django.utils import timezone

    from tenants import services as tenant_services
    from tests.fixtures import SYSTEM

    plaintext = org_a.key("owner")
    key = org_a.key_object(plaintext)
    body = org_a.client_for(plaintext).post("/api/v1/scim-tokens", {"name": "Okta"}).json()
    assert body["created_by_key"] == key.display
    scim = ScimClient(org_a, body["token"], Client())
    assert scim.get("Users").status_code == 200
    # A token made in the console by a person is bound to no key.
    console_token = scim_client_for(org_a)
    with org_a.scope():
        if end == "revoked":
            tenant_services.revoke_api_key(actor=SYSTEM, api_key=key)
        else:
            type(key).objects.filter(pk=key.pk).update(
                expires_at=timezone.now() - timedelta(seconds=1))
    refused = scim.get("Users")
    assert refused.status_code == 401
    assert "Invalid or revoked SCIM token" in refused.content.decode()
    assert console_token.get("Users").status_code == 200
