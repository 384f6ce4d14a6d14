"""ServiceProviderConfig, ResourceTypes, Schemas; errors in the SCIM format."""

from __future__ import annotations


def test_service_provider_config(scim_a):
    response = scim_a.get("ServiceProviderConfig")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/scim+json"
    body = response.json()
    assert body["patch"]["supported"] is True
    assert body["filter"] == {"supported": True, "maxResults": 200}
    assert body["bulk"]["supported"] is False
    assert body["authenticationSchemes"][0]["type"] == "oauthbearertoken"


def test_resource_types_and_schemas(scim_a):
    types = scim_a.get("ResourceTypes").json()
    assert {r["id"] for r in types["Resources"]} == {"User", "Group"}
    assert scim_a.get("ResourceTypes/User").json()["endpoint"] == "/Users"
    assert scim_a.get("ResourceTypes/Nope").status_code == 404
    schemas = scim_a.get("Schemas").json()
    ids = {s["id"] for s in schemas["Resources"]}
    assert ids == {"urn:ietf:params:scim:schemas:core:2.0:User",
                   "urn:ietf:params:scim:schemas:core:2.0:Group"}
    user = scim_a.get("Schemas/urn:ietf:params:scim:schemas:core:2.0:User").json()
    assert "userName" in {a["name"] for a in user["attributes"]}


def test_discovery_needs_a_token(client, db):
    assert client.get("/scim/v2/ServiceProviderConfig").status_code == 401


def test_errors_are_scim_errors(scim_a):
    response = scim_a.client.post("/scim/v2/Users", data="{not json",
                                  content_type="application/scim+json",
                                  HTTP_AUTHORIZATION=f"Bearer {scim_a.plaintext}")
    assert response.status_code == 400
    assert response.json() == {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                               "status": "400", "scimType": "invalidSyntax",
                               "detail": "The body is not valid JSON."}
    assert scim_a.delete("ServiceProviderConfig").status_code == 405
    assert scim_a.get("Users/not-a-uuid").status_code == 404
