"""ServiceProviderConfig, ResourceTypes and Schemas (RFC 7643 §5-7): what this server does."""

from __future__ import annotations

from typing import Any

from station.scim.protocol import GROUP_SCHEMA, MAX_RESULTS, USER_SCHEMA

SPC_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
RT_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
SCHEMA_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Schema"
DOCS = "https://station.local/docs/scim"


def service_provider_config(base: str) -> dict[str, Any]:
    return {
        "schemas": [SPC_SCHEMA],
        "documentationUri": DOCS,
        "patch": {"supported": True},
        "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": True, "maxResults": MAX_RESULTS},
        "changePassword": {"supported": False},
        "sort": {"supported": False},
        "etag": {"supported": False},
        "authenticationSchemes": [{
            "type": "oauthbearertoken", "name": "Bearer token", "primary": True,
            "description": "A SCIM token created in the console (Access → SCIM provisioning), "
                           "sent as Authorization: Bearer scim_…",
        }],
        "meta": {"resourceType": "ServiceProviderConfig",
                 "location": f"{base}/ServiceProviderConfig"},
    }


def resource_types(base: str) -> list[dict[str, Any]]:
    return [
        {"schemas": [RT_SCHEMA], "id": "User", "name": "User", "endpoint": "/Users",
         "description": "A member of the organization", "schema": USER_SCHEMA,
         "meta": {"resourceType": "ResourceType", "location": f"{base}/ResourceTypes/User"}},
        {"schemas": [RT_SCHEMA], "id": "Group", "name": "Group", "endpoint": "/Groups",
         "description": "An IdP group; mapped to a role by the organization's group mapping",
         "schema": GROUP_SCHEMA,
         "meta": {"resourceType": "ResourceType", "location": f"{base}/ResourceTypes/Group"}},
    ]


def _attr(name: str, *, kind: str = "string", required: bool = False, multi: bool = False,
          mutability: str = "readWrite", uniqueness: str = "none",
          sub: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    attribute: dict[str, Any] = {
        "name": name, "type": kind, "multiValued": multi, "required": required,
        "caseExact": False, "mutability": mutability, "returned": "default",
        "uniqueness": uniqueness, "description": name}
    if sub:
        attribute["subAttributes"] = sub
    return attribute


def schemas(base: str) -> list[dict[str, Any]]:
    user = {
        "schemas": [SCHEMA_SCHEMA], "id": USER_SCHEMA, "name": "User",
        "description": "A member of the organization (userName is the email address)",
        "attributes": [
            _attr("userName", required=True, mutability="immutable", uniqueness="server"),
            _attr("externalId"),
            _attr("name", kind="complex", sub=[_attr("givenName"), _attr("familyName"),
                                               _attr("formatted")]),
            _attr("displayName"),
            _attr("emails", kind="complex", multi=True, mutability="readOnly",
                  sub=[_attr("value"), _attr("type"), _attr("primary", kind="boolean")]),
            _attr("active", kind="boolean"),
            _attr("groups", kind="complex", multi=True, mutability="readOnly",
                  sub=[_attr("value"), _attr("display")]),
        ],
        "meta": {"resourceType": "Schema", "location": f"{base}/Schemas/{USER_SCHEMA}"},
    }
    group = {
        "schemas": [SCHEMA_SCHEMA], "id": GROUP_SCHEMA, "name": "Group",
        "description": "An IdP group",
        "attributes": [
            _attr("displayName", required=True, uniqueness="server"),
            _attr("externalId"),
            _attr("members", kind="complex", multi=True,
                  sub=[_attr("value", mutability="immutable"), _attr("display")]),
        ],
        "meta": {"resourceType": "Schema", "location": f"{base}/Schemas/{GROUP_SCHEMA}"},
    }
    return [user, group]
