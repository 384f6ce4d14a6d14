"""allauth's SAML provider reads its per-org configuration through this adapter.

`list_apps` builds an unsaved `SocialApp` from the org's `SamlConnection` (client_id = the
org slug, which is what allauth's SAML URLs carry). No SocialApp rows exist: the global
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


def saml_app_for_org(org_slug: str) -> SocialApp | None:
    from station.identity.models import SamlConnection

    org = platform.org_by_slug(org_slug)
    if org is None:
        return None
    with org_scope(org.id):
        connection = SamlConnection.objects.filter(enabled=True).first()
    if connection is None:
        return None
    idp = saml.IdpConfig(connection.idp_entity_id, connection.idp_sso_url,
                         connection.idp_x509cert)
    return SocialApp(provider="saml", provider_id="saml", name=org.name, client_id=org.slug,
                     settings=saml.provider_settings(org.slug, idp))


class StationSocialAccountAdapter(DefaultSocialAccountAdapter):
    def list_apps(self, request: HttpRequest | None, provider: Any = None,
                  client_id: Any = None) -> list[SocialApp]:
        if provider not in (None, "saml") or not client_id:
            return []
        app = saml_app_for_org(str(client_id))
        return [app] if app is not None else []

    def is_open_for_signup(self, request: HttpRequest, sociallogin: Any) -> bool:
        # Accounts from SSO are made by station.identity.provisioning only.
        return False
