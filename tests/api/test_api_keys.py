"""API keys: shown once, stored as a keyed hash, refused uniformly when not usable."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditEvent
from tenants import apikeys
from tenants.models import ApiKey, IdempotencyRecord
from tests.fixtures import OrgFixture

pytestmark = pytest.mark.django_db
PROBLEM = "application/problem+json"


def _create(client: APIClient, **extra: Any) -> Any:
    body = {"name": "ci", "scopes": ["environments.read"], **extra.pop("body", {})}
    return client.post("/api/v1/api-keys", body, format="json", **extra)


def test_created_key_is_returned_once_and_never_listed(org_a: OrgFixture) -> None:
    client = org_a.client("owner")
    response = _create(client)
    assert response.status_code == 201, response.content
    created = response.json()
    plaintext = created["key"]
    assert plaintext.startswith("stk_")
    assert created["prefix"].endswith(plaintext[-4:])

    listing = client.get("/api/v1/api-keys?page_size=200")
    detail = client.get(f"/api/v1/api-keys/{created['id']}")
    for response in (listing, detail):
        assert response.status_code == 200
        assert plaintext not in response.content.decode()
        assert apikeys.parse(plaintext)[1] not in response.content.decode()  # type: ignore[index]
    assert "key" not in detail.json()
    assert all("key" not in row for row in listing.json()["results"])

    # The new key works.
    assert org_a.client_for(plaintext).get("/api/v1/environments").status_code == 200


def test_database_keeps_only_a_keyed_hash_and_last_four(org_a: OrgFixture) -> None:
    plaintext = _create(org_a.client("owner")).json()["key"]
    key_id, secret = apikeys.parse(plaintext)  # type: ignore[misc]
    with org_a.scope():
        row = ApiKey.objects.filter(key_id=key_id).values().get()
    stored = json.dumps(row, default=str)
    assert secret not in stored and plaintext not in stored
    assert row["last_four"] == secret[-4:]
    assert row["secret_hash"] == apikeys.hash_secret(secret)
    assert len(row["secret_hash"]) == 64
    # Keyed: a bare SHA-256 of the secret is not what is stored.
    import hashlib

    assert row["secret_hash"] != hashlib.sha256(secret.encode()).hexdigest()


def test_plaintext_never_reaches_the_idempotency_table(org_a: OrgFixture) -> None:
    client = org_a.client("owner")
    first = _create(client, HTTP_IDEMPOTENCY_KEY="create-ci-key")
    plaintext = first.json()["key"]
    secret = apikeys.parse(plaintext)[1]  # type: ignore[index]
    with org_a.scope():
        records = list(IdempotencyRecord.objects.values())
    assert len(records) == 1
    assert secret not in json.dumps(records, default=str)
    replay = _create(client, HTTP_IDEMPOTENCY_KEY="create-ci-key")
    assert replay.status_code == 201
    assert replay.json()["id"] == first.json()["id"]
    assert replay.json()["key"] is None  # shown once: a replay cannot show it again
    with org_a.scope():
        assert ApiKey.objects.filter(name="ci").count() == 1


def test_audit_event_of_a_new_key_holds_no_secret(org_a: OrgFixture) -> None:
    plaintext = _create(org_a.client("owner")).json()["key"]
    secret = apikeys.parse(plaintext)[1]  # type: ignore[index]
    with org_a.scope():
        events = list(AuditEvent.objects.values())
    assert secret not in json.dumps(events, default=str)


# --- refused keys ---------------------------------------------------------------------------


def _assert_401(response: Any) -> None:
    assert response.status_code == 401, response.content
    assert response["Content-Type"].startswith(PROBLEM)
    assert response["WWW-Authenticate"].startswith("Bearer")
    body = response.json()
    assert body["status"] == 401
    assert body["type"] == "urn:station:problem:unauthenticated"


def _raw_client(header: str | None) -> APIClient:
    client = APIClient()
    if header is not None:
        client.credentials(HTTP_AUTHORIZATION=header)
    return client


def test_expired_key_is_refused(org_a: OrgFixture) -> None:
    plaintext = org_a.key("viewer")
    assert org_a.client_for(plaintext).get("/api/v1/me").status_code == 200
    key = org_a.key_object(plaintext)
    with org_a.scope():
        ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    _assert_401(org_a.client_for(plaintext).get("/api/v1/me"))


def test_revoked_key_is_refused(org_a: OrgFixture) -> None:
    plaintext = org_a.key("viewer")
    key = org_a.key_object(plaintext)
    response = org_a.client("owner").post(f"/api/v1/api-keys/{key.pk}/revoke")
    assert response.status_code == 200
    assert response.json()["revoked_at"]
    _assert_401(org_a.client_for(plaintext).get("/api/v1/me"))


def test_key_revoking_itself_is_refused_afterwards(org_a: OrgFixture) -> None:
    plaintext = org_a.key("owner")
    key = org_a.key_object(plaintext)
    client = org_a.client_for(plaintext)
    assert client.post(f"/api/v1/api-keys/{key.pk}/revoke").status_code == 200
    _assert_401(client.get("/api/v1/me"))


@pytest.mark.parametrize("header", [
    "Bearer stk_", "Bearer stk_short_secret", "Bearer not-a-key", "Bearer a b",
    "Bearer stk_ABCDEFGHIJKL_" + "x" * 40,  # upper-case key id
    "Bearer " + "stk_abcdefghijkl_" + "x" * 65,  # secret too long
    "Bearer",
])
def test_malformed_key_is_refused(header: str, org_a: OrgFixture) -> None:
    _assert_401(_raw_client(header).get("/api/v1/me"))


@pytest.mark.parametrize("header", [
    None, "Basic dXNlcjpwYXNz", "Token abc", "Bearer ghp_" + "a" * 36,
    "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln",
])
def test_missing_or_foreign_credentials_are_refused(header: str | None, org_a: OrgFixture) -> None:
    _assert_401(_raw_client(header).get("/api/v1/me"))


def test_unknown_key_id_is_refused(org_a: OrgFixture) -> None:
    generated = apikeys.generate()
    _assert_401(org_a.client_for(generated.plaintext).get("/api/v1/me"))


def test_right_id_wrong_secret_is_refused_like_an_unknown_id(org_a: OrgFixture) -> None:
    plaintext = org_a.key("owner")
    key_id, secret = apikeys.parse(plaintext)  # type: ignore[misc]
    wrong = f"stk_{key_id}_{secret[:-1]}{'A' if secret[-1] != 'A' else 'B'}"
    wrong_response = org_a.client_for(wrong).get("/api/v1/me")
    unknown_response = org_a.client_for(apikeys.generate().plaintext).get("/api/v1/me")
    _assert_401(wrong_response)
    assert wrong_response.json()["detail"] == unknown_response.json()["detail"]


def test_a_refused_key_leaves_no_org_context_and_writes_nothing(org_a: OrgFixture) -> None:
    plaintext = org_a.key("owner")
    key_id, _ = apikeys.parse(plaintext)  # type: ignore[misc]
    wrong = f"stk_{key_id}_" + "z" * 43
    response = org_a.client_for(wrong).post("/api/v1/environments", {"slug": "qa", "name": "QA"})
    _assert_401(response)
    with org_a.scope():
        assert not ApiKey.objects.get(key_id=key_id).last_used_at
        assert not AuditEvent.objects.filter(action="environment.created").exists()


# --- scopes at creation -----------------------------------------------------------------------


def test_key_cannot_be_created_with_scopes_its_creator_lacks(
    org_a: OrgFixture, member: Any
) -> None:
    creator = member("admin@acme.example", "admin")
    client = org_a.client("admin", created_by=creator)
    with org_a.scope():
        keys_before, events_before = ApiKey.objects.count(), AuditEvent.objects.count()
    response = _create(client, body={"scopes": ["billing.manage"]})
    assert response.status_code == 403, response.content
    assert "billing.manage" in response.json()["detail"]
    response = client.post("/api/v1/api-keys", {"name": "ci", "role": "owner"}, format="json")
    assert response.status_code == 403, response.content
    with org_a.scope():
        assert ApiKey.objects.count() == keys_before
        assert AuditEvent.objects.count() == events_before


def test_key_cannot_be_created_wider_than_the_calling_key(org_a: OrgFixture) -> None:
    client = org_a.client(scopes=["apikeys.manage", "environments.read"])
    assert _create(client, body={"scopes": ["environments.write"]}).status_code == 403
    assert _create(client, body={"scopes": ["environments.read"]}).status_code == 201


@pytest.mark.parametrize("body", [
    {"scopes": ["agents.launch"]}, {"scopes": []}, {"scopes": None},
    {"expires_at": "2001-01-01T00:00:00Z"}, {"environment": "nope"}, {"name": ""},
])
def test_invalid_key_requests_are_422(body: dict[str, Any], org_a: OrgFixture) -> None:
    response = _create(org_a.client("owner"), body=body)
    assert response.status_code == 422, response.content


# --- last_used_at -----------------------------------------------------------------------------


def test_last_used_at_is_written_at_most_once_per_resolution_window(
    org_a: OrgFixture, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.API_KEY_LAST_USED_RESOLUTION_SECONDS = 3600
    plaintext = org_a.key("viewer")
    client = org_a.client_for(plaintext)

    def last_used() -> Any:
        return org_a.key_object(plaintext).last_used_at

    def use(path: str) -> None:
        # The write happens after the request commits (django's on_commit).
        with django_capture_on_commit_callbacks(execute=True):
            assert client.get(path).status_code == 200

    assert last_used() is None
    use("/api/v1/me")
    first = last_used()
    assert first is not None
    use("/api/v1/me")
    use("/api/v1/environments")
    assert last_used() == first  # throttled inside the window

    key = org_a.key_object(plaintext)
    earlier = timezone.now() - timedelta(hours=2)
    with org_a.scope():
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=earlier)
    use("/api/v1/me")
    assert last_used() > earlier + timedelta(hours=1)
