"""allauth's SAML and OpenID Connect providers read per-org configuration through this adapter.

`list_apps` builds an unsaved `SocialApp` from the org's `SamlConnection` (client_id = the
org slug, which is what allauth's SAML URLs carry), and one from its `OidcConnection`
(provider_id `oidc-<org slug>`). No SocialApp rows exist: the global
socialaccount table would sit outside row-level security, while SamlConnection is a tenant
table read inside the org's scope.
"""

from __future__ import annotations

from typing import Any

from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.models import SocialApp
from django.http import HttpRequest

from station.identity import saml
from tenants import platform
from tenants.context import org_scope


def saml_app_for_org(org_slug: str, *, include_disabled: bool = False) -> SocialApp | None:
    """The org's SAML IdP as an unsaved allauth app; a disabled connection only with
    `include_disabled` (its SP metadata, a connection test — never a sign-in)."""
    from station.identity.models import SamlConnection

    org = platform.org_by_slug(org_slug)
    if org is None:
        return None
    with org_scope(org.id):
        rows = SamlConnection.objects.all() if include_disabled else \
            SamlConnection.objects.filter(enabled=True)
        connection = rows.first()
    if connection is None:
        return None
    idp = saml.IdpConfig(connection.idp_entity_id, connection.idp_sso_url,
                         connection.idp_x509cert)
    return SocialApp(provider="saml", provider_id="saml", name=org.name, client_id=org.slug,
                     settings=saml.provider_settings(org.slug, idp))


OIDC_PREFIX = "oidc-"


def oidc_app_for_org(org_slug: str, *,
                     include_disabled: bool = False) -> tuple[SocialApp, Any] | None:
    """The org's OIDC provider as an unsaved allauth `openid_connect` app, with the connection
    it came from (read in the org's scope). Endpoints are stored, so allauth's discovery fetch
    is never needed; the client secret stays sealed in the connection. A disabled connection
    only with `include_disabled` (a connection test — never a sign-in)."""
    from station.identity.models import OidcConnection

    org = platform.org_by_slug(org_slug)
    if org is None:
        return None
    with org_scope(org.id):
        rows = OidcConnection.objects.all() if include_disabled else \
            OidcConnection.objects.filter(enabled=True)
        connection = rows.first()
    if connection is None:
        return None
    app = SocialApp(
        provider="openid_connect", provider_id=f"{OIDC_PREFIX}{org.slug}", name=org.name,
        client_id=connection.client_id,
        settings={"server_url": connection.issuer, "fetch_userinfo": False,
                  "token_auth_method": "client_secret_basic",
                  "scope": connection.scopes.split(),
                  "openid_configuration_overrides": {
                      "issuer": connection.issuer,
                      "authorization_endpoint": connection.authorization_endpoint,
                      "token_endpoint": connection.token_endpoint,
                      "jwks_uri": connection.jwks_uri}})
    return app, connection


class StationSocialAccountAdapter(DefaultSocialAccountAdapter):
    def list_apps(self, request: HttpRequest | None, provider: Any = None,
                  client_id: Any = None) -> list[SocialApp]:
        if isinstance(provider, str) and provider.startswith(OIDC_PREFIX):
            found = oidc_app_for_org(provider[len(OIDC_PREFIX):])
            return [found[0]] if found is not None else []
        if provider not in (None, "saml") or not client_id:
            return []
        # The SP metadata is served before SSO is turned on: the IdP is set up from it first.
        # (allauth's SAML views routed here are metadata, ACS — which only stores the POST for
        # Station's finish view — and single logout; sign-ins go through Station's views.)
        match = getattr(request, "resolver_match", None)
        app = saml_app_for_org(str(client_id), include_disabled=bool(
            match is not None and match.url_name == "saml_metadata"))
        return [app] if app is not None else []

    def is_open_for_signup(self, request: HttpRequest, sociallogin: Any) -> bool:
        # Accounts from SSO are made by station.identity.provisioning only.
        return False
