"""`/scim/v2/`: plain Django views speaking application/scim+json.

Every request authenticates with a SCIM bearer token, which alone decides the org (a SCIM
request names none): `platform.enter_org_of_scim_token` scopes the transaction to the token's
org, so RLS confines every read and write to it, and a user or group id of another org is a
404 like an id that never existed. Each handler runs in a savepoint: an error rolls back
whatever it had written, and the response is a SCIM error.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from station.core.errors import StationError
from station.scim import discovery, protocol, provisioning, tokens
from station.scim.errors import ScimError, not_found
from station.scim.models import ScimGroup, ScimToken, ScimUser
from tenants import context, platform

CONTENT_TYPE = "application/scim+json"
Handler = Callable[..., HttpResponse]


def scim_response(body: Any, status: int = 200) -> HttpResponse:
    return HttpResponse(json.dumps(body), status=status, content_type=CONTENT_TYPE)


def _error(exc: ScimError) -> HttpResponse:
    response = scim_response(exc.body(), exc.status)
    if exc.status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="station-scim"'
    return response


def _authenticate(request: HttpRequest) -> ScimToken:
    header = request.headers.get("Authorization", "").split()
    if len(header) != 2 or header[0].lower() != "bearer":
        raise ScimError(401, "Send the SCIM token as 'Authorization: Bearer scim_…'.")
    parsed = tokens.parse(header[1])
    refused = ScimError(401, "Invalid or revoked SCIM token.")
    if parsed is None:
        raise refused
    token_id, secret = parsed
    if platform.enter_org_of_scim_token(token_id) is None:
        raise refused
    token = ScimToken.objects.select_related("created_by_key").filter(token_id=token_id).first()
    if token is None or not tokens.secret_matches(secret, token.secret_hash) \
            or not token.is_usable:
        context.clear()
        raise refused
    tokens.touch_scim_token(token)
    return token


def _from_station_error(exc: StationError) -> ScimError:
    # A refused last-owner removal is a 409; invalid input a 400 invalidValue.
    status = 400 if exc.status == 422 else exc.status
    return ScimError(status, exc.detail, "invalidValue" if status == 400 else None)


def endpoint(*methods: str) -> Callable[[Handler], Handler]:
    def decorator(handler: Handler) -> Handler:
        @csrf_exempt
        @wraps(handler)
        def view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                with transaction.atomic():
                    token = _authenticate(request)
                if request.method not in methods:
                    raise ScimError(405, f"{request.method} is not supported here.")
                with transaction.atomic():
                    return handler(request, tokens.principal_for(token), *args, **kwargs)
            except ScimError as exc:
                return _error(exc)
            except StationError as exc:
                return _error(_from_station_error(exc))

        return view

    return decorator


def _base(request: HttpRequest) -> str:
    return request.build_absolute_uri("/scim/v2")


def _body(request: HttpRequest) -> dict[str, Any]:
    try:
        body = json.loads(request.body or b"{}")
    except ValueError as exc:
        raise ScimError(400, "The body is not valid JSON.", "invalidSyntax") from exc
    if not isinstance(body, dict):
        raise ScimError(400, "The body must be a JSON object.", "invalidSyntax")
    return body


def _uuid(raw: str, kind: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError as exc:
        raise not_found(kind, raw) from exc


def _page(request: HttpRequest, queryset: Any, render: Callable[[Any], dict[str, Any]],
          filters: dict[str, str]) -> HttpResponse:
    raw_filter = request.GET.get("filter")
    if raw_filter:
        field, value = protocol.parse_eq_filter(raw_filter, filters)
        if field == "pk":
            try:
                value = str(uuid.UUID(value))
            except ValueError:
                return scim_response(protocol.list_response([], 0, 1))
        queryset = queryset.filter(**{field: value})
    start, count = protocol.pagination(request.GET)
    total = queryset.count()
    rows = list(queryset[start - 1:start - 1 + count]) if count else []
    return scim_response(protocol.list_response([render(r) for r in rows], total, start))


# --- discovery ----------------------------------------------------------------------------------


@endpoint("GET")
def service_provider_config(request: HttpRequest, actor: Any) -> HttpResponse:
    return scim_response(discovery.service_provider_config(_base(request)))


@endpoint("GET")
def resource_types(request: HttpRequest, actor: Any, name: str | None = None) -> HttpResponse:
    found = discovery.resource_types(_base(request))
    if name is None:
        return scim_response(protocol.list_response(found, len(found), 1))
    match = next((r for r in found if r["id"] == name), None)
    if match is None:
        raise not_found("ResourceType", name)
    return scim_response(match)


@endpoint("GET")
def schemas(request: HttpRequest, actor: Any, urn: str | None = None) -> HttpResponse:
    found = discovery.schemas(_base(request))
    if urn is None:
        return scim_response(protocol.list_response(found, len(found), 1))
    match = next((s for s in found if s["id"] == urn), None)
    if match is None:
        raise not_found("Schema", urn)
    return scim_response(match)


# --- users --------------------------------------------------------------------------------------


def _user(user_id: str) -> ScimUser:
    found = ScimUser.objects.select_related("user").filter(pk=_uuid(user_id, "User")).first()
    if found is None:
        raise not_found("User", user_id)
    return found


@endpoint("GET", "POST")
def users(request: HttpRequest, actor: tokens.ScimPrincipal) -> HttpResponse:
    base = _base(request)
    if request.method == "POST":
        values = protocol.user_fields_from_body(_body(request))
        created = provisioning.create_user(actor=actor, values=values)
        response = scim_response(protocol.user_resource(created, base), 201)
        response["Location"] = f"{base}/Users/{created.pk}"
        return response
    provisioning.sync_members()
    return _page(request, ScimUser.objects.select_related("user").order_by("created_at", "id"),
                 lambda u: protocol.user_resource(u, base), protocol.USER_FILTERS)


@endpoint("GET", "PUT", "PATCH", "DELETE")
def user(request: HttpRequest, actor: tokens.ScimPrincipal, user_id: str) -> HttpResponse:
    found = _user(user_id)
    if request.method == "DELETE":
        provisioning.delete_user(actor=actor, scim_user=found)
        return HttpResponse(status=204)
    if request.method == "PUT":
        values = protocol.user_fields_from_body(_body(request))
        found = provisioning.update_user(actor=actor, scim_user=found, values=values)
    elif request.method == "PATCH":
        values = protocol.patch_user(provisioning.UserFields.of(found), _body(request))
        found = provisioning.update_user(actor=actor, scim_user=found, values=values)
    return scim_response(protocol.user_resource(found, _base(request)))


# --- groups -------------------------------------------------------------------------------------


def _group(group_id: str) -> ScimGroup:
    found = ScimGroup.objects.filter(pk=_uuid(group_id, "Group")).first()
    if found is None:
        raise not_found("Group", group_id)
    return found


def _members_excluded(request: HttpRequest) -> bool:
    excluded = request.GET.get("excludedAttributes", "")
    return "members" in {a.strip().lower() for a in excluded.split(",")}


@endpoint("GET", "POST")
def groups(request: HttpRequest, actor: tokens.ScimPrincipal) -> HttpResponse:
    base = _base(request)
    if request.method == "POST":
        body = _body(request)
        created = provisioning.create_group(
            actor=actor, display_name=body.get("displayName"),
            external_id=protocol._text(body.get("externalId"), "externalId"),
            member_ids=protocol._member_ids(body.get("members")))
        response = scim_response(protocol.group_resource(created, base), 201)
        response["Location"] = f"{base}/Groups/{created.pk}"
        return response
    members = not _members_excluded(request)
    return _page(request, ScimGroup.objects.order_by("display_name", "id"),
                 lambda g: protocol.group_resource(g, base, members=members),
                 protocol.GROUP_FILTERS)


@endpoint("GET", "PUT", "PATCH", "DELETE")
def group(request: HttpRequest, actor: tokens.ScimPrincipal, group_id: str) -> HttpResponse:
    found = _group(group_id)
    if request.method == "DELETE":
        provisioning.delete_group(actor=actor, group=found)
        return HttpResponse(status=204)
    if request.method == "PUT":
        body = _body(request)
        found = provisioning.update_group(
            actor=actor, group=found, display_name=body.get("displayName"),
            external_id=protocol._text(body.get("externalId"), "externalId"),
            replace_members=protocol._member_ids(body.get("members")))
    elif request.method == "PATCH":
        changes = protocol.group_patch(found, _body(request))
        found = provisioning.update_group(actor=actor, group=found, **changes)
    return scim_response(protocol.group_resource(found, _base(request),
                                                 members=not _members_excluded(request)))
