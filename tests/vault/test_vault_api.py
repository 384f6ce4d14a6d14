"""The vault through the REST API: values go in and never come out, names are checked, and an
environment-bound key or a narrowed member is judged in the secret's environment."""

from __future__ import annotations

from typing import Any

import pytest

from audit.models import AuditEvent
from station.vault import services
from station.vault.models import DataKey, Secret, Variable
from tenants import services as tenant_services
from tenants.models import ApiKey, Environment, IdempotencyRecord, Membership
from tests.fixtures import SYSTEM, OrgFixture

pytestmark = pytest.mark.django_db

CANARY = "canary-7d1e-api-value-must-never-come-back"


def _create(client: Any, env: str = "staging", name: str = "GITHUB_TOKEN",
            value: str = CANARY) -> Any:
    return client.post("/api/v1/secrets", {"environment": env, "name": name, "value": value},
                       format="json")


def _everything(client: Any, secret_id: object) -> list[bytes]:
    """Every read the API offers about secrets, as raw bytes."""
    return [client.get(path).content for path in (
        "/api/v1/secrets", "/api/v1/secrets?environment=staging", f"/api/v1/secrets/{secret_id}",
        "/api/v1/audit-events?page_size=200")]


def test_create_returns_metadata_and_never_the_value(org_a: OrgFixture) -> None:
    client = org_a.client("owner")
    response = _create(client)
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {"id", "name", "environment", "current_version", "fingerprint",
                         "created_at", "updated_at", "updated_by_label", "last_revealed_at",
                         "last_revealed_for"}
    assert body["environment"] == "staging"
    assert body["current_version"] == 1
    assert body["fingerprint"]
    assert CANARY.encode() not in response.content
    for content in _everything(client, body["id"]):
        assert CANARY.encode() not in content


def test_rotating_the_value_adds_a_version_with_a_new_fingerprint(org_a: OrgFixture) -> None:
    client = org_a.client("owner")
    created = _create(client).json()
    response = client.put(f"/api/v1/secrets/{created['id']}/value", {"value": CANARY + "-2"},
                          format="json")
    assert response.status_code == 200, response.content
    assert response.json()["current_version"] == 2
    assert response.json()["fingerprint"] != created["fingerprint"]
    detail = client.get(f"/api/v1/secrets/{created['id']}").json()
    assert [v["version"] for v in detail["versions"]] == [2, 1]
    assert set(detail["versions"][0]) == {"version", "fingerprint", "created_at",
                                          "created_by_label"}
    assert detail["versions"][1]["fingerprint"] == created["fingerprint"]
    for content in _everything(client, created["id"]):
        assert CANARY.encode() not in content


def test_duplicate_name_is_409_and_keeps_the_first_value(org_a: OrgFixture) -> None:
    client = org_a.client("owner")
    first = _create(client).json()
    response = _create(client, value="another")
    assert response.status_code == 409, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    assert client.get(f"/api/v1/secrets/{first['id']}").json()["current_version"] == 1
    # The same name in another environment is another secret.
    assert _create(client, env="prod").status_code == 201


@pytest.mark.parametrize("name", ["1ABC", "has space", "a-b", "${secret:X}", "x" * 65])
def test_bad_name_is_422_naming_the_field(org_a: OrgFixture, name: str) -> None:
    response = _create(org_a.client("owner"), name=name)
    assert response.status_code == 422, response.content
    assert [e["field"] for e in response.json()["errors"]] == ["name"]
    with org_a.scope():
        assert not Secret.objects.exists()


@pytest.mark.parametrize("body, field", [
    ({"environment": "staging", "name": "X"}, "value"),
    ({"environment": "staging", "name": "X", "value": ""}, "value"),
    ({"environment": "nowhere", "name": "X", "value": "v"}, "environment"),
    ({"name": "X", "value": "v"}, "environment"),
])
def test_missing_or_bad_fields_are_422(org_a: OrgFixture, body: dict[str, str],
                                       field: str) -> None:
    response = org_a.client("owner").post("/api/v1/secrets", body, format="json")
    assert response.status_code == 422, response.content
    assert field in [e["field"] for e in response.json()["errors"]]


def test_value_never_reaches_the_idempotency_table(org_a: OrgFixture) -> None:
    client = org_a.client("owner")
    response = client.post("/api/v1/secrets",
                           {"environment": "dev", "name": "T", "value": CANARY},
                           format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert response.status_code == 201
    with org_a.scope():
        assert CANARY not in str(list(IdempotencyRecord.objects.values()))


def test_delete_removes_the_secret_and_is_audited(org_a: OrgFixture) -> None:
    client = org_a.client("owner")
    created = _create(client).json()
    assert client.delete(f"/api/v1/secrets/{created['id']}").status_code == 204
    assert client.get(f"/api/v1/secrets/{created['id']}").status_code == 404
    with org_a.scope():
        actions = list(AuditEvent.objects.order_by("sequence").values_list("action", flat=True))
    assert actions[-2:] == ["secret.created", "secret.deleted"]


def test_list_filters_by_environment(org_a: OrgFixture) -> None:
    client = org_a.client("owner")
    _create(client, env="dev", name="A")
    _create(client, env="prod", name="B")
    names = [s["name"] for s in client.get("/api/v1/secrets?environment=prod").json()["results"]]
    assert names == ["B"]
    assert len(client.get("/api/v1/secrets").json()["results"]) == 2
    assert client.get("/api/v1/secrets?environment=nope").status_code == 422


def test_viewer_reads_but_cannot_write(org_a: OrgFixture) -> None:
    _create(org_a.client("owner"))
    viewer = org_a.client("viewer")
    assert viewer.get("/api/v1/secrets").json()["results"][0]["name"] == "GITHUB_TOKEN"
    response = _create(viewer, name="OTHER")
    assert response.status_code == 403
    assert "secrets.write" in response.json()["detail"]


# --- environment binding and narrowing -------------------------------------------------------


def test_environment_bound_key_sees_and_writes_only_its_environment(org_a: OrgFixture) -> None:
    owner = org_a.client("owner")
    prod_secret = _create(owner, env="prod", name="PROD_ONLY").json()
    dev_secret = _create(owner, env="dev", name="DEV_ONLY").json()
    owner.post("/api/v1/variables", {"environment": "prod", "name": "P", "value": "p"})
    owner.post("/api/v1/variables", {"environment": "dev", "name": "D", "value": "d"})

    bound = org_a.client("developer", env="dev", created_by=org_a.owner)
    assert [s["name"] for s in bound.get("/api/v1/secrets").json()["results"]] == ["DEV_ONLY"]
    assert [v["name"] for v in bound.get("/api/v1/variables").json()["results"]] == ["D"]
    assert bound.get("/api/v1/secrets?environment=prod").status_code == 422
    assert bound.get(f"/api/v1/secrets/{prod_secret['id']}").status_code == 404
    assert bound.put(f"/api/v1/secrets/{prod_secret['id']}/value", {"value": "x"}).status_code \
        == 404
    assert bound.delete(f"/api/v1/secrets/{prod_secret['id']}").status_code == 404
    assert _create(bound, env="prod", name="SNEAKY").status_code == 422
    assert bound.put(f"/api/v1/secrets/{dev_secret['id']}/value", {"value": "y"}).status_code \
        == 200
    assert _create(bound, env="dev", name="NEW_DEV").status_code == 201
    # The data key protects every environment: not a bound key's to rotate.
    assert bound.post("/api/v1/vault/rotate-data-key").status_code == 403


def test_member_narrowed_to_viewer_in_prod_cannot_write_prod_secrets(
    org_a: OrgFixture, member: Any
) -> None:
    user = member("dev@acme.example", "developer")
    with org_a.scope():
        tenant_services.set_environment_role(
            actor=SYSTEM, membership=Membership.objects.get(user=user),
            environment=Environment.objects.get(slug="prod"), role="viewer")
    owner = org_a.client("owner")
    prod_secret = _create(owner, env="prod", name="PROD_DB").json()
    # A key the developer made earlier (developers cannot mint keys through the API).
    plaintext = org_a.key("developer")
    with org_a.scope():
        ApiKey.objects.filter(pk=org_a.key_object(plaintext).pk).update(
            created_by=user, creator_kind="user")
    client = org_a.client_for(plaintext)

    assert _create(client, env="prod", name="MINE").status_code == 403
    assert client.put(f"/api/v1/secrets/{prod_secret['id']}/value",
                      {"value": "x"}).status_code == 403
    assert client.delete(f"/api/v1/secrets/{prod_secret['id']}").status_code == 403
    assert client.post("/api/v1/variables", {"environment": "prod", "name": "V",
                                             "value": "v"}).status_code == 403
    # Reading prod and writing elsewhere are still theirs.
    assert client.get(f"/api/v1/secrets/{prod_secret['id']}").status_code == 200
    assert _create(client, env="staging", name="MINE").status_code == 201
    with org_a.scope():
        assert Secret.objects.get(pk=prod_secret["id"]).current_version == 1


# --- variables --------------------------------------------------------------------------------


def test_variables_create_update_patch_delete(org_a: OrgFixture) -> None:
    client = org_a.client("owner")
    created = client.post("/api/v1/variables",
                          {"environment": "staging", "name": "API_URL", "value": "https://a"})
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["value"] == "https://a" and body["environment"] == "staging"
    again = client.post("/api/v1/variables",
                        {"environment": "staging", "name": "API_URL", "value": "https://b"})
    assert again.status_code == 200
    assert again.json()["id"] == body["id"]
    patched = client.patch(f"/api/v1/variables/{body['id']}", {"value": "https://c"})
    assert patched.status_code == 200 and patched.json()["value"] == "https://c"
    assert client.get(f"/api/v1/variables/{body['id']}").json()["value"] == "https://c"
    listed = client.get("/api/v1/variables?environment=staging").json()["results"]
    assert [v["name"] for v in listed] == ["API_URL"]
    assert client.delete(f"/api/v1/variables/{body['id']}").status_code == 204
    with org_a.scope():
        assert not Variable.objects.exists()
        actions = list(AuditEvent.objects.filter(action__startswith="variable.")
                       .order_by("sequence").values_list("action", flat=True))
    assert actions == ["variable.set"] * 3 + ["variable.deleted"]


def test_variable_bad_name_is_422(org_a: OrgFixture) -> None:
    response = org_a.client("owner").post(
        "/api/v1/variables", {"environment": "dev", "name": "bad name", "value": "v"})
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["name"]


# --- data key rotation --------------------------------------------------------------------------


def test_rotate_data_key_reencrypts_every_value(org_a: OrgFixture, settings: Any) -> None:
    client = org_a.client("owner")
    _create(client, env="dev", name="A")
    _create(client, env="prod", name="B")
    with org_a.scope():
        before = DataKey.objects.get()
    response = client.post("/api/v1/vault/rotate-data-key")
    assert response.status_code == 200, response.content
    assert response.json() == {"values_reencrypted": 2}
    settings.VAULT_REVEAL_ALLOWED = True
    with org_a.scope():
        assert DataKey.objects.get().version == before.version + 1
        assert services.reveal(environment=Environment.objects.get(slug="prod"), name="B",
                               purpose="test", actor=SYSTEM) == CANARY
