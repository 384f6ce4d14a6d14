"""Org A's owner key against org B's objects, on every API route found in the URL conf.

A foreign object must be indistinguishable from a missing one (same 404 body), must stay
untouched, and must never show up in any collection response.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.api.routes import Route, api_routes, route_id
from tests.fixtures import SeededOrg

pytestmark = pytest.mark.django_db

ROUTES = api_routes()
DETAIL_ROUTES = [r for r in ROUTES if r.detail and r.model is not None]
COLLECTION_GETS = [r for r in ROUTES if not r.detail and r.method == "get"]
ALL_DETAIL_ROUTES = [r for r in ROUTES if r.detail]
PROBLEM = "application/problem+json"

# Ids that are not ids: wrong shape, injection attempts, integer overflow, unicode.
MALFORMED_IDS = [
    "not-an-id", "1%27%3B%20DROP%20TABLE%20x", "99999999999999999999999999", "-1",
    "0x10", "%C3%A9t%C3%A9", "00000000-0000-0000-0000-00000000000g", "%00",
]


def _send(client: Any, route: Route, pk: object = None) -> Any:
    call = getattr(client, route.method)
    if route.method in {"post", "patch", "put"}:
        return call(route.path(pk), {}, format="json")
    return call(route.path(pk))


def _foreign_object(seeded: SeededOrg, model: type) -> Any:
    rows = seeded.objects.get(model)
    if not rows:
        with seeded.fx.scope():
            rows = list(model.objects.all()[:1])  # type: ignore[attr-defined]
    assert rows, f"seed_org() must create a {model.__name__} for the cross-org matrix"
    return rows[0]


def _missing_id(route: Route) -> object:
    return 2**62 if route.lookup_kind == "int" else uuid.uuid4()


def _comparable(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in {"instance", "request_id"}}


@pytest.mark.parametrize("route", DETAIL_ROUTES, ids=route_id)
def test_foreign_object_is_a_404_like_a_missing_one(
    route: Route, seeded_a: SeededOrg, seeded_b: SeededOrg
) -> None:
    client = seeded_a.fx.client("owner")
    foreign = _foreign_object(seeded_b, route.model)

    missing = _send(client, route, _missing_id(route))
    response = _send(client, route, foreign.pk)

    assert missing.status_code == 404, missing.content
    assert response.status_code == 404, response.content
    assert response["Content-Type"].startswith(PROBLEM)
    assert _comparable(response.json()) == _comparable(missing.json())
    with seeded_b.fx.scope():
        after = route.model.objects.filter(pk=foreign.pk).values().first()
    assert after is not None, "the foreign object was deleted"
    assert after == {
        f.attname: getattr(foreign, f.attname) for f in route.model._meta.concrete_fields
    }


def _scalars(data: Any, key: str = "") -> set[str]:
    """Every id-like value in a JSON document (uuid strings anywhere, ints under *id keys)."""
    found: set[str] = set()
    if isinstance(data, dict):
        for k, v in data.items():
            found |= _scalars(v, str(k))
            found.add(str(k))
    elif isinstance(data, list):
        for item in data:
            found |= _scalars(item, key)
    elif isinstance(data, str):
        found.add(data)
    elif isinstance(data, int) and not isinstance(data, bool) and (
        key == "id" or key.endswith("_id")
    ):
        found.add(str(data))
    return found


def _collect_pages(client: Any, path: str) -> list[Any]:
    pages = []
    url: str | None = f"{path}?page_size=200"
    while url:
        response = client.get(url)
        assert response.status_code == 200, (path, response.content)
        body = response.json()
        pages.append(body)
        url = body.get("next") if isinstance(body, dict) else None
    return pages


@pytest.mark.parametrize("route", COLLECTION_GETS, ids=route_id)
def test_collections_never_show_another_orgs_ids(
    route: Route, seeded_a: SeededOrg, seeded_b: SeededOrg
) -> None:
    seen = set()
    for page in _collect_pages(seeded_a.fx.client("owner"), route.path()):
        seen |= _scalars(page)
    foreign = seeded_b.ids()
    # Audit event ids are integers; only a JSON "id"/"*_id" field could carry them.
    assert not (seen & foreign), f"{route} leaks org B ids: {seen & foreign}"


def test_org_a_and_org_b_ids_are_distinct(seeded_a: SeededOrg, seeded_b: SeededOrg) -> None:
    # Guards the matrix itself: a shared id would make the leak check meaningless.
    assert not (seeded_a.ids() & seeded_b.ids())


@pytest.mark.parametrize("bad_id", MALFORMED_IDS)
@pytest.mark.parametrize("route", ALL_DETAIL_ROUTES, ids=route_id)
def test_malformed_ids_are_a_problem_404(route: Route, bad_id: str, org_a: Any) -> None:
    response = _send(org_a.client("owner"), route, bad_id)
    assert response.status_code == 404, (bad_id, response.content)
    assert response["Content-Type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == 404
    assert body["type"] == "urn:station:problem:not_found"


def test_unknown_api_path_is_a_problem_404(org_a: Any) -> None:
    response = org_a.client("owner").get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response["Content-Type"].startswith(PROBLEM)
