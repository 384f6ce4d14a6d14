"""SCIM fixtures: a token per org and a client that speaks application/scim+json."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client

from station.identity import services as identity
from station.scim import tokens
from tests.fixtures import SYSTEM, OrgFixture

SCIM = "application/scim+json"


@dataclass
class ScimClient:
    fx: OrgFixture
    plaintext: str
    client: Client

    def _call(self, method: str, path: str, body: Any = None, **extra: Any) -> Any:
        url = path if path.startswith("/") else f"/scim/v2/{path}"
        kwargs: dict[str, Any] = {"HTTP_AUTHORIZATION": f"Bearer {self.plaintext}", **extra}
        if body is not None:
            kwargs.update(data=json.dumps(body), content_type=SCIM)
        return getattr(self.client, method)(url, **kwargs)

    def get(self, path: str, **extra: Any) -> Any:
        return self._call("get", path, **extra)

    def post(self, path: str, body: Any) -> Any:
        return self._call("post", path, body)

    def put(self, path: str, body: Any) -> Any:
        return self._call("put", path, body)

    def patch(self, path: str, body: Any) -> Any:
        return self._call("patch", path, body)

    def delete(self, path: str) -> Any:
        return self._call("delete", path)


def scim_client_for(fx: OrgFixture) -> ScimClient:
    with fx.scope():
        created = tokens.create_scim_token(actor=SYSTEM, org=fx.org, name="Okta")
    return ScimClient(fx, created.plaintext, Client())


@pytest.fixture
def scim_a(org_a: OrgFixture) -> ScimClient:
    return scim_client_for(org_a)


@pytest.fixture
def scim_b(org_b: OrgFixture) -> ScimClient:
    return scim_client_for(org_b)


@pytest.fixture
def map_group() -> Callable[[OrgFixture, str, str], None]:
    def _map(fx: OrgFixture, group: str, role: str) -> None:
        with fx.scope():
            identity.set_group_mapping(actor=SYSTEM, org=fx.org, group=group, role=role)
    return _map


def okta_user(email: str, given: str = "Ada", family: str = "Lovelace") -> dict[str, Any]:
    """What Okta POSTs to /Users (its documented create request)."""
    return {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": email,
        "name": {"givenName": given, "familyName": family},
        "emails": [{"primary": True, "value": email, "type": "work"}],
        "displayName": f"{given} {family}",
        "locale": "en-US",
        "externalId": "00u1abcd",
        "groups": [],
        "password": "not-kept-1234",
        "active": True,
    }


def entra_user(email: str) -> dict[str, Any]:
    """What Microsoft Entra POSTs to /Users (default attribute mappings)."""
    return {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "externalId": "4d2c-entra-object-id",
        "userName": email,
        "active": True,
        "displayName": "Grace Hopper",
        "emails": [{"primary": True, "type": "work", "value": email}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "Grace Hopper", "familyName": "Hopper", "givenName": "Grace"},
        "title": "Rear Admiral",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "employeeNumber": "1701", "department": "Navy"},
    }


def patch(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": list(operations)}
