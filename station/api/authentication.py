"""API key authentication. A valid key sets the request's org context from the key."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils.functional import SimpleLazyObject
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from tenants import apikeys, context, platform
from tenants.authz import Principal
from tenants.models import ApiKey
from tenants.services import touch_api_key

_INVALID = "Invalid, expired or revoked API key."


class ApiKeyAuthentication(BaseAuthentication):
    keyword = b"bearer"

    def authenticate(self, request: Request) -> tuple[object, Principal] | None:
        header = get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Use 'Authorization: Bearer stk_…'.")
        plaintext = header[1].decode("latin-1")
        parsed = apikeys.parse(plaintext)
        if parsed is None:
            raise exceptions.AuthenticationFailed("Malformed API key: expected 'stk_…'.")
        key_id, secret = parsed
        found = platform.enter_org_of_api_key(key_id)
        if (
            found is None
            or not apikeys.secret_matches(secret, found.key.secret_hash)
            or not found.key.is_usable()
        ):
            context.clear()
            raise exceptions.AuthenticationFailed(_INVALID)
        key = found.key
        resolution = timedelta(seconds=settings.API_KEY_LAST_USED_RESOLUTION_SECONDS)
        touch_api_key(key, resolution=resolution)
        principal = Principal.for_api_key(
            key, creator_roles=(found.creator_role, found.creator_env_role),
            known_roles=found.custom_roles,
        )
        # request.user is loaded only if something asks for it (the API itself never does).
        user = SimpleLazyObject(lambda: key.created_by or _KeyUser(key))
        return (user, principal)

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="station"'


class _KeyUser:
    """request.user for a key made by the platform operator (no creating user)."""

    is_authenticated = True
    is_anonymous = False

    def __init__(self, key: ApiKey) -> None:
        self.pk = None
        self.key = key

    def __str__(self) -> str:
        return self.key.display


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "station.api.authentication.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema: object) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "bearerFormat": "stk_<id>_<secret>"}
