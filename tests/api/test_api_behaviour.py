"""API conventions: problem+json errors, validation, cursor pages, Idempotency-Key, owner
invariants, the OpenAPI schema and docs, and the health probes."""

from __future__ import annotations

import re
from io import StringIO
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from audit.models import AuditEvent
from tenants import services
from tenants.models import Environment, IdempotencyRecord, Membership
from tests.api.routes import api_routes
from tests.fixtures import SYSTEM, OrgFixture

pytestmark = pytest.mark.django_db
PROBLEM = "application/problem+json"
PROBLEM_KEYS = {"type", "title", "status", "detail", "instance", "errors", "request_id"}


def _assert_problem(response: Any, status: int, *, path: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert set(body) == PROBLEM_KEYS, body
    assert body["status"] == status
    assert body["type"].startswith("urn:station:problem:")
    assert body["title"] and body["detail"]
    assert body["request_id"] == response["X-Request-ID"]
    if path is not None:
        assert body["instance"] == path
    assert isinstance(body["errors"], list)
    for error in body["errors"]:
        assert set(error) == {"field", "message"}
    return body


# --- problem details ----------------------------------------------------------------------


def test_401_is_a_problem(org_a: OrgFixture) -> None:
    body = _assert_problem(APIClient().get("/api/v1/environments"), 401,
                           path="/api/v1/environments")
    assert body["type"] == "urn:station:problem:unauthenticated"


def test_403_is_a_problem_naming_the_permission(org_a: OrgFixture) -> None:
    response = org_a.client("viewer").post("/api/v1/environments", {"slug": "q", "name": "Q"})
    body = _assert_problem(response, 403)
    assert "environments.write" in body["detail"]


def test_404_is_a_problem(org_a: OrgFixture) -> None:
    response = org_a.client("owner").get(
        "/api/v1/environments/00000000-0000-0000-0000-000000000000")
    _assert_problem(response, 404)


def test_409_duplicate_environment_slug(org_a: OrgFixture) -> None:
    response = org_a.client("owner").post("/api/v1/environments", {"slug": "dev", "name": "D"})
    body = _assert_problem(response, 409)
    assert body["errors"] == [{"field": "slug",
                               "message": "This slug is taken in this organization."}]


def test_422_names_every_invalid_field(org_a: OrgFixture) -> None:
    response = org_a.client("owner").post("/api/v1/environments", {"slug": "Not A Slug!"})
    body = _assert_problem(response, 422)
    assert {e["field"] for e in body["errors"]} == {"slug", "name"}
    assert "slug" in body["detail"] and "name" in body["detail"]


def test_422_unknown_role(org_a: OrgFixture) -> None:
    response = org_a.client("owner").post(
        "/api/v1/members", {"email": "x@acme.example", "role": "emperor"})
    body = _assert_problem(response, 422)
    assert [e["field"] for e in body["errors"]] == ["role"]


def test_422_nested_and_non_object_bodies(org_a: OrgFixture) -> None:
    client = org_a.client("owner")
    body = _assert_problem(client.post("/api/v1/api-keys", {"name": "k", "scopes": [1, {}]},
                                       format="json"), 422)
    assert all(e["field"].startswith("scopes") for e in body["errors"])
    _assert_problem(client.post("/api/v1/environments", [1, 2], format="json"), 422)


def test_malformed_json_is_a_400_problem(org_a: OrgFixture) -> None:
    response = org_a.client("owner").post(
        "/api/v1/environments", data="{not json", content_type="application/json")
    _assert_problem(response, 400)


def test_unsupported_media_type_and_method_are_problems(org_a: OrgFixture) -> None:
    client = org_a.client("owner")
    _assert_problem(client.post("/api/v1/environments", data="slug=x",
                                content_type="application/x-www-form-urlencoded"), 415)
    _assert_problem(client.put("/api/v1/organization", {"name": "x"}), 405)
    _assert_problem(client.put("/api/v1/environments", {"name": "x"}), 405)
    _assert_problem(client.delete("/api/v1/audit-events/1"), 405)
    _assert_problem(APIClient().put("/api/v1/organization", {"name": "x"}), 401)


def test_unknown_route_is_a_problem(org_a: OrgFixture) -> None:
    response = org_a.client("owner").get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response["Content-Type"].startswith(PROBLEM)


# --- pagination ------------------------------------------------------------------------------


def _make_envs(org: OrgFixture, count: int) -> None:
    with org.scope():
        for i in range(count):
            services.create_environment(actor=SYSTEM, org=org.org, slug=f"env-{i}", name=f"E{i}")


def test_cursor_pages_are_complete_stable_and_ordered(org_a: OrgFixture) -> None:
    _make_envs(org_a, 8)  # 11 with dev/staging/prod
    client = org_a.client("owner")
    seen: list[dict[str, Any]] = []
    url: str | None = "/api/v1/environments?page_size=3"
    pages = 0
    while url:
        body = client.get(url).json()
        assert len(body["results"]) <= 3
        seen.extend(body["results"])
        url = body["next"]
        if url:
            assert urlsplit(url).path == "/api/v1/environments"
            assert "cursor=" in url
        pages += 1
    assert pages == 4
    ids = [e["id"] for e in seen]
    assert len(ids) == len(set(ids)) == 11
    expected = sorted(seen, key=lambda e: (e["created_at"], e["id"]), reverse=True)
    assert seen == expected
    # The same walk again gives the same sequence.
    again = client.get("/api/v1/environments?page_size=11").json()["results"]
    assert [e["id"] for e in again] == ids


def test_page_size_is_capped_at_200(org_a: OrgFixture) -> None:
    _make_envs(org_a, 200)  # 203 environments, 204 audit events
    client = org_a.client("owner")
    for path in ("/api/v1/environments", "/api/v1/audit-events"):
        body = client.get(f"{path}?page_size=100000").json()
        assert len(body["results"]) == 200, path
        assert body["next"]
    assert len(client.get("/api/v1/environments").json()["results"]) == 50  # default


@pytest.mark.parametrize(("path", "cursor"), [
    ("/api/v1/environments", "garbage"),
    ("/api/v1/environments", "cD0yMDI0"),  # "p=2024": decodes, but 2024 is no created_at
    ("/api/v1/environments", "cD1hYmM="),  # "p=abc"
    ("/api/v1/audit-events", "garbage"),
    ("/api/v1/audit-events", "cD1hYmM="),  # "p=abc" where a sequence number belongs
])
def test_bad_cursor_is_a_404_problem_not_a_500(path: str, cursor: str, org_a: OrgFixture) -> None:
    response = org_a.client("owner").get(f"{path}?cursor={cursor}")
    _assert_problem(response, 404)


@pytest.mark.parametrize("query", ["since=yesterday", "until=2020-13-45"])
def test_bad_audit_filters_are_422(query: str, org_a: OrgFixture) -> None:
    _assert_problem(org_a.client("auditor", created_by=org_a.owner)
                    .get(f"/api/v1/audit-events?{query}"), 422)


# --- idempotency ---------------------------------------------------------------------------


def _counts(org: OrgFixture) -> tuple[int, int, int]:
    with org.scope():
        return (Environment.objects.count(), AuditEvent.objects.count(),
                IdempotencyRecord.objects.count())


def test_same_key_and_body_replays_the_first_response_once(org_a: OrgFixture) -> None:
    client = org_a.client("owner")
    body = {"slug": "qa", "name": "QA"}
    first = client.post("/api/v1/environments", body, HTTP_IDEMPOTENCY_KEY="k-1")
    envs, events, records = _counts(org_a)
    second = client.post("/api/v1/environments", body, HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second["Idempotent-Replayed"] == "true"
    assert _counts(org_a) == (envs, events, records) and records == 1


def test_same_key_with_another_body_is_422(org_a: OrgFixture) -> None:
    client = org_a.client("owner")
    client.post("/api/v1/environments", {"slug": "qa", "name": "QA"}, HTTP_IDEMPOTENCY_KEY="k-1")
    before = _counts(org_a)
    response = client.post("/api/v1/environments", {"slug": "qb", "name": "QB"},
                           HTTP_IDEMPOTENCY_KEY="k-1")
    body = _assert_problem(response, 422)
    assert body["errors"][0]["field"] == "Idempotency-Key"
    assert _counts(org_a) == before


def test_failed_request_leaves_no_idempotency_record(org_a: OrgFixture) -> None:
    client = org_a.client("owner")
    before = _counts(org_a)
    failed = client.post("/api/v1/environments", {"slug": "dev", "name": "D"},
                         HTTP_IDEMPOTENCY_KEY="k-2")
    assert failed.status_code == 409
    assert _counts(org_a) == before
    # The key is free for a corrected request.
    retry = client.post("/api/v1/environments", {"slug": "qa", "name": "QA"},
                        HTTP_IDEMPOTENCY_KEY="k-2")
    assert retry.status_code == 201


def test_idempotency_keys_belong_to_one_principal(org_a: OrgFixture) -> None:
    body = {"slug": "qa", "name": "QA"}
    assert org_a.client("owner").post("/api/v1/environments", body,
                                      HTTP_IDEMPOTENCY_KEY="k-3").status_code == 201
    other = org_a.client("owner").post("/api/v1/environments", body, HTTP_IDEMPOTENCY_KEY="k-3")
    assert other.status_code == 409  # not a replay of someone else's response


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\there"])
def test_malformed_idempotency_key_is_422(key: str, org_a: OrgFixture) -> None:
    response = org_a.client("owner").post("/api/v1/environments", {"slug": "qa", "name": "QA"},
                                          HTTP_IDEMPOTENCY_KEY=key)
    _assert_problem(response, 422)


# --- owners -----------------------------------------------------------------------------------


def _owner_membership(org: OrgFixture) -> Membership:
    with org.scope():
        return Membership.objects.get(user=org.owner)


def test_last_owner_cannot_be_removed_or_demoted(org_a: OrgFixture) -> None:
    client = org_a.client("owner")
    owner = _owner_membership(org_a)
    _assert_problem(client.delete(f"/api/v1/members/{owner.pk}"), 409)
    body = _assert_problem(client.patch(f"/api/v1/members/{owner.pk}", {"role": "admin"}), 409)
    assert body["errors"][0]["field"] == "role"
    with org_a.scope():
        assert Membership.objects.get(pk=owner.pk).role == "owner"


def test_an_owner_can_step_down_once_there_is_another(org_a: OrgFixture) -> None:
    client = org_a.client("owner")
    second = client.post("/api/v1/members", {"email": "two@acme.example", "role": "owner"})
    assert second.status_code == 201
    owner = _owner_membership(org_a)
    assert client.patch(f"/api/v1/members/{owner.pk}", {"role": "admin"}).status_code == 200
    _assert_problem(client.delete(f"/api/v1/members/{second.json()['id']}"), 409)


def test_last_environment_cannot_be_deleted(org_a: OrgFixture) -> None:
    client = org_a.client("owner")
    envs = client.get("/api/v1/environments").json()["results"]
    for env in envs[:-1]:
        assert client.delete(f"/api/v1/environments/{env['id']}").status_code == 204
    _assert_problem(client.delete(f"/api/v1/environments/{envs[-1]['id']}"), 409)


# --- schema and docs --------------------------------------------------------------------------


def test_openapi_schema_is_served() -> None:
    response = APIClient().get("/api/schema/")
    assert response.status_code == 200
    assert "openapi" in response["Content-Type"]
    assert b"/api/v1/environments" in response.content


def test_openapi_schema_validates_without_warnings(tmp_path: Path) -> None:
    out, err = StringIO(), StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", "--file",
                 str(tmp_path / "schema.yaml"), stdout=out, stderr=err)
    assert "Warning" not in err.getvalue() and "Error" not in err.getvalue(), err.getvalue()


def _normalise(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


def test_every_api_route_is_in_the_schema() -> None:
    import yaml

    schema = yaml.safe_load(APIClient().get("/api/schema/").content)
    documented = {
        (_normalise(path), method)
        for path, operations in schema["paths"].items()
        for method in operations
    }
    missing = [str(r) for r in api_routes()
               if (_normalise(r.template), r.method) not in documented]
    assert missing == []


def test_api_docs_are_served_without_external_hosts() -> None:
    response = APIClient().get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger" in html.lower()
    hosts = {urlsplit(url).hostname
             for url in re.findall(r"""(?:https?:)?//[^\s"'<>)]+""", html)}
    assert hosts <= {None, "testserver", "localhost"}, hosts


# --- probes ------------------------------------------------------------------------------------


def test_healthz() -> None:
    response = APIClient().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_reports_the_database() -> None:
    response = APIClient().get("/readyz")
    body = response.json()
    assert body["checks"]["database"] == "ok"
    assert response.status_code == (200 if body["checks"]["broker"] == "ok" else 503)
