"""SCIM wire format: resources as JSON, list filters, and PATCH operations (RFC 7644 §3.4-3.5).

Filters: the `<attribute> eq "<value>"` form IdPs send to look people and groups up (Okta and
Entra both do exactly that before creating); anything else is refused with invalidFilter, which
RFC 7644 allows. PATCH: add/replace/remove in any letter case (Entra sends "Replace"), with or
without a path, booleans as JSON or as strings ("False").
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import replace
from typing import Any

from station.scim.errors import ScimError, invalid_value
from station.scim.models import ScimGroup, ScimUser
from station.scim.provisioning import UserFields

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
LIST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
MAX_RESULTS = 200


def _meta(kind: str, obj: ScimUser | ScimGroup, base: str) -> dict[str, Any]:
    return {"resourceType": kind, "created": obj.created_at.isoformat(),
            "lastModified": obj.updated_at.isoformat(),
            "location": f"{base}/{kind}s/{obj.pk}"}


def user_resource(scim_user: ScimUser, base: str) -> dict[str, Any]:
    email = scim_user.user.email
    groups = [{"value": str(m.group_id), "display": m.group.display_name,
               "$ref": f"{base}/Groups/{m.group_id}"}
              for m in scim_user.groups.select_related("group").order_by("group__display_name")]
    resource: dict[str, Any] = {
        "schemas": [USER_SCHEMA], "id": str(scim_user.pk), "userName": email,
        "name": {"givenName": scim_user.given_name, "familyName": scim_user.family_name,
                 "formatted": scim_user.formatted_name},
        "displayName": scim_user.display_name or scim_user.user.name,
        "emails": [{"value": email, "type": "work", "primary": True}],
        "active": scim_user.active, "groups": groups,
        "meta": _meta("User", scim_user, base),
    }
    if scim_user.external_id:
        resource["externalId"] = scim_user.external_id
    return resource


def group_resource(group: ScimGroup, base: str, *, members: bool = True) -> dict[str, Any]:
    resource: dict[str, Any] = {"schemas": [GROUP_SCHEMA], "id": str(group.pk),
                                "displayName": group.display_name,
                                "meta": _meta("Group", group, base)}
    if group.external_id:
        resource["externalId"] = group.external_id
    if members:
        resource["members"] = [
            {"value": str(m.scim_user_id), "display": m.scim_user.user.email,
             "$ref": f"{base}/Users/{m.scim_user_id}"}
            for m in group.memberships.select_related("scim_user__user")]
    return resource


def list_response(resources: list[dict[str, Any]], total: int, start: int) -> dict[str, Any]:
    return {"schemas": [LIST_SCHEMA], "totalResults": total, "startIndex": start,
            "itemsPerPage": len(resources), "Resources": resources}


def pagination(params: Any) -> tuple[int, int]:
    """(startIndex, count): 1-based start (below 1 means 1), count capped, negative is 0."""
    try:
        start = int(params.get("startIndex", 1))
        count = int(params.get("count", MAX_RESULTS))
    except ValueError as exc:
        raise invalid_value("startIndex and count must be integers.") from exc
    return max(start, 1), min(max(count, 0), MAX_RESULTS)


# --- filters ------------------------------------------------------------------------------------

_FILTER_RE = re.compile(r'^\s*([A-Za-z][\w.:]*)\s+eq\s+"((?:[^"\\]|\\.)*)"\s*$', re.IGNORECASE)


def parse_eq_filter(raw: str, allowed: dict[str, str]) -> tuple[str, str]:
    """`attr eq "value"` → (our field name, value). Attribute names are case-insensitive."""
    match = _FILTER_RE.match(raw)
    if not match:
        raise ScimError(400, 'Only filters of the form attribute eq "value" are supported.',
                        "invalidFilter")
    attribute = match.group(1).lower()
    fields = {name.lower(): field for name, field in allowed.items()}
    if attribute not in fields:
        raise ScimError(400, f"Filtering on {match.group(1)} is not supported; use one of "
                             f"{', '.join(allowed)}.", "invalidFilter")
    value = json.loads(f'"{match.group(2)}"')
    return fields[attribute], value


USER_FILTERS = {"userName": "user__email__iexact", "emails.value": "user__email__iexact",
                "externalId": "external_id", "id": "pk"}
GROUP_FILTERS = {"displayName": "display_name", "externalId": "external_id", "id": "pk"}


# --- users: body and PATCH ------------------------------------------------------------------------


def as_bool(value: Any, name: str = "active") -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise invalid_value(f"{name} must be a boolean.")


def _text(value: Any, name: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise invalid_value(f"{name} must be a string.")
    return value


def user_fields_from_body(body: dict[str, Any]) -> UserFields:
    """A full User resource (POST, PUT) → the fields Station keeps."""
    name = body.get("name") or {}
    if not isinstance(name, dict):
        raise invalid_value("name must be an object.")
    user_name = body.get("userName")
    if not user_name:
        user_name = next((e.get("value") for e in body.get("emails") or []
                          if isinstance(e, dict) and e.get("primary")), None)
    return UserFields(
        user_name=_text(user_name, "userName"),
        external_id=_text(body.get("externalId"), "externalId"),
        given_name=_text(name.get("givenName"), "name.givenName"),
        family_name=_text(name.get("familyName"), "name.familyName"),
        formatted_name=_text(name.get("formatted"), "name.formatted"),
        display_name=_text(body.get("displayName"), "displayName"),
        active=as_bool(body.get("active", True)),
    )


_USER_PATHS = {"username": "user_name", "externalid": "external_id",
               "displayname": "display_name", "active": "active",
               "name.givenname": "given_name", "name.familyname": "family_name",
               "name.formatted": "formatted_name"}
# Attributes IdPs send by default that Station has no use for: accepted and not kept.
_IGNORED = {"nickname", "profileurl", "title", "usertype", "preferredlanguage", "locale",
            "timezone", "emails", "phonenumbers", "ims", "photos", "addresses",
            "entitlements", "roles", "x509certificates", "password", "name.middlename",
            "name.honorificprefix", "name.honorificsuffix", "schemas", "id", "meta"}


def _user_path(path: str) -> str | None:
    key = path.strip().lower()
    if key.startswith("urn:ietf:params:scim:schemas:core:2.0:user:"):
        key = key.removeprefix("urn:ietf:params:scim:schemas:core:2.0:user:")
    if key in _USER_PATHS:
        return _USER_PATHS[key]
    root = re.split(r"[.\[]", key, maxsplit=1)[0]
    if key in _IGNORED or root in _IGNORED or key.startswith("urn:"):
        return None  # e.g. emails[type eq "work"].value, the enterprise extension
    if root == "groups":
        raise ScimError(400, "groups is read-only on a User: change the Group's members.",
                        "mutability")
    raise ScimError(400, f"Unknown attribute path {path!r}.", "invalidPath")


def _set_user(values: UserFields, path: str, value: Any, *, remove: bool) -> UserFields:
    field = _user_path(path)
    if field is None:
        return values
    if field == "active":
        if remove:
            raise invalid_value("active cannot be removed.")
        return replace(values, active=as_bool(value))
    if remove:
        if field == "user_name":
            raise ScimError(400, "userName cannot be removed.", "mutability")
        return replace(values, **{field: ""})  # type: ignore[arg-type]
    if field == "name" or isinstance(value, dict):
        raise invalid_value(f"{path} must be a string.")
    return replace(values, **{field: _text(value, path)})  # type: ignore[arg-type]


def _flatten(value: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, item in value.items():
        if key == "name" and isinstance(item, dict) and not prefix:
            out += _flatten(item, "name.")
        else:
            out.append((prefix + key, item))
    return out


def patch_operations(body: dict[str, Any]) -> list[tuple[str, str | None, Any]]:
    operations = body.get("Operations")
    if not isinstance(operations, list) or not operations:
        raise invalid_value("A PATCH body needs a non-empty Operations list.")
    parsed: list[tuple[str, str | None, Any]] = []
    for operation in operations:
        if not isinstance(operation, dict):
            raise invalid_value("Each operation must be an object.")
        op = str(operation.get("op", "")).lower()
        if op not in ("add", "replace", "remove"):
            raise invalid_value(f"Unsupported op {operation.get('op')!r}.")
        path = operation.get("path")
        if path is not None and not isinstance(path, str):
            raise ScimError(400, "path must be a string.", "invalidPath")
        parsed.append((op, path or None, operation.get("value")))
    return parsed


def patch_user(values: UserFields, body: dict[str, Any]) -> UserFields:
    for op, path, value in patch_operations(body):
        if path is None:
            if op == "remove":
                raise ScimError(400, "remove needs a path.", "noTarget")
            if not isinstance(value, dict):
                raise invalid_value("An operation without a path needs an object value.")
            for key, item in _flatten(value):
                values = _set_user(values, key, item, remove=False)
        else:
            values = _set_user(values, path, value, remove=op == "remove")
    return values


# --- groups: PATCH ------------------------------------------------------------------------------

_MEMBER_FILTER_RE = re.compile(r'^members\[\s*value\s+eq\s+"([^"]+)"\s*\]$', re.IGNORECASE)


def _member_ids(value: Any) -> list[str]:
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    ids: list[str] = []
    for item in items:
        if not isinstance(item, dict) or "value" not in item:
            raise invalid_value('Members are given as [{"value": "<user id>"}].')
        raw = str(item["value"])
        try:
            ids.append(str(uuid.UUID(raw)))
        except ValueError:
            ids.append(raw)  # refused later as an unknown user
    return ids


def group_patch(group: ScimGroup, body: dict[str, Any]) -> dict[str, Any]:
    """PATCH operations → keyword arguments for provisioning.update_group."""
    current = [str(pk) for pk in group.memberships.values_list("scim_user_id", flat=True)]
    members = list(current)
    changes: dict[str, Any] = {}
    for op, path, value in patch_operations(body):
        key = (path or "").strip()
        lowered = key.lower()
        if not key:
            if op == "remove" or not isinstance(value, dict):
                raise invalid_value("An operation without a path needs an object value.")
            for attr, item in value.items():
                if attr.lower() == "displayname":
                    changes["display_name"] = item
                elif attr.lower() == "externalid":
                    changes["external_id"] = _text(item, "externalId")
                elif attr.lower() == "members":
                    ids = _member_ids(item)
                    members = ids if op == "replace" else members + ids
                elif attr.lower() not in ("id", "schemas", "meta"):
                    raise ScimError(400, f"Unknown attribute {attr!r}.", "invalidPath")
        elif lowered == "displayname":
            if op == "remove":
                raise ScimError(400, "displayName cannot be removed.", "mutability")
            changes["display_name"] = value
        elif lowered == "externalid":
            changes["external_id"] = "" if op == "remove" else _text(value, "externalId")
        elif lowered == "members":
            ids = _member_ids(value)
            if op == "add":
                members += ids
            elif op == "replace":
                members = ids
            else:  # remove: the listed members (Entra), or all of them with no value
                members = [m for m in members if m not in ids] if value is not None else []
        elif match := _MEMBER_FILTER_RE.match(key):
            if op != "remove":
                raise ScimError(400, f"{op} on a member filter is not supported.", "invalidPath")
            removed = _member_ids([{"value": match.group(1)}])
            members = [m for m in members if m not in removed]
        else:
            raise ScimError(400, f"Unknown attribute path {key!r}.", "invalidPath")
    if members != current:
        changes["replace_members"] = list(dict.fromkeys(members))
    return changes
