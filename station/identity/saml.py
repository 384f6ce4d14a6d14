"""SAML configuration: validating what an org admin gives us, the SP values the IdP needs, and
the settings handed to allauth's SAML provider (python3-saml underneath).

The security settings python3-saml leaves to the integrator are fixed here and are not
configurable per org: strict mode, signed assertions, deprecated algorithms (SHA-1) refused.
AuthnRequest ids, InResponseTo, the replay cache, IdP-initiated login and RelayState are
enforced by `station.identity.acs`.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from django.conf import settings
from django.urls import reverse
from onelogin.saml2.constants import OneLogin_Saml2_Constants
from onelogin.saml2.idp_metadata_parser import OneLogin_Saml2_IdPMetadataParser

from station.core.errors import InvalidInput
from station.identity import fetch

# How long an AuthnRequest may wait for its response.
REQUEST_TTL_SECONDS = 600
MAX_METADATA_BYTES = 256 * 1024

SECURITY: dict[str, Any] = {
    "strict": True,
    "want_assertion_signed": True,
    # The whole Response need not be signed (many IdPs sign only the assertion); the signed
    # assertion is what python3-saml reads, and wrapping attacks are refused in strict mode.
    "want_message_signed": False,
    "reject_deprecated_algorithm": True,
    "want_name_id": True,
    "want_attribute_statement": False,
    "authn_request_signed": False,
    "signature_algorithm": OneLogin_Saml2_Constants.RSA_SHA256,
    "digest_algorithm": OneLogin_Saml2_Constants.SHA256,
    # We do our own IdP-initiated decision (per org opt-in) in station.identity.acs.
    "reject_idp_initiated_sso": True,
}


@dataclass(frozen=True)
class IdpConfig:
    entity_id: str
    sso_url: str
    x509cert: str  # base64 DER, no PEM armour, no whitespace


def _clean_cert(raw: str, field: str) -> str:
    body = raw.strip()
    for armour in ("-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"):
        body = body.replace(armour, "")
    body = "".join(body.split())
    if not body:
        raise InvalidInput.field(field, "A signing certificate is required.")
    try:
        der = base64.b64decode(body, validate=True)
        cert = x509.load_der_x509_certificate(der)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput.field(
            field, "This is not an X.509 certificate (PEM or base64 DER expected).") from exc
    # python3-saml verifies signatures with the key and ignores the dates, so an expired
    # certificate would keep working silently; it means the IdP has rolled its key.
    expired_on = cert.not_valid_after_utc
    if expired_on < datetime.now(UTC):
        raise InvalidInput.field(
            field, f"This certificate expired on {expired_on:%Y-%m-%d}: give the IdP's current "
                   "signing certificate (or its metadata) instead.")
    return body


def _clean_sso_url(raw: str, field: str) -> str:
    url = raw.strip()
    parts = urlsplit(url)
    # http:// only with the private-network switch (a test IdP on loopback), as for OIDC.
    schemes = ("https", "http") if fetch.private_networks_allowed() else ("https",)
    if parts.scheme not in schemes or not parts.netloc:
        raise InvalidInput.field(field, "The IdP's single sign-on URL must be an https:// URL.")
    return url


def _clean_entity_id(raw: str, field: str) -> str:
    entity_id = raw.strip()
    if not entity_id or len(entity_id) > 1000:
        raise InvalidInput.field(field, "The IdP entity id is required (at most 1000 "
                                        "characters).")
    return entity_id


def parse_idp_metadata(xml: str, field: str = "metadata_xml") -> IdpConfig:
    """Entity id, SSO URL (HTTP-Redirect binding) and signing certificate from IdP metadata;
    problems are errors on `field`."""
    if len(xml.encode()) > MAX_METADATA_BYTES:
        raise InvalidInput.field(field, "The metadata is larger than 256 KiB.")
    try:
        data = OneLogin_Saml2_IdPMetadataParser.parse(xml)
    except Exception as exc:  # lxml / python3-saml raise many kinds on bad XML
        raise InvalidInput.field(field, "This is not well-formed SAML metadata XML "
                                        "(DTDs and entities are refused).") from exc
    idp = data.get("idp") or {}
    if not idp.get("entityId"):
        raise InvalidInput.field(field, "No IDPSSODescriptor with an entityID was found in "
                                        "the metadata.")
    sso = (idp.get("singleSignOnService") or {}).get("url")
    if not sso:
        raise InvalidInput.field(field, "The metadata has no SingleSignOnService with the "
                                        "HTTP-Redirect binding.")
    cert = idp.get("x509cert") or next(iter((idp.get("x509certMulti") or {})
                                            .get("signing") or []), None)
    if not cert:
        raise InvalidInput.field(field, "The metadata has no signing certificate "
                                        "(KeyDescriptor use=\"signing\"); Station only "
                                        "accepts signed assertions.")
    return IdpConfig(
        entity_id=_clean_entity_id(idp["entityId"], field),
        sso_url=_clean_sso_url(sso, field),
        x509cert=_clean_cert(cert, field),
    )


def fetch_idp_metadata(url: str, field: str = "metadata_url") -> tuple[str, str, IdpConfig]:
    """(clean URL, metadata XML, IdP values) read now from the IdP's metadata URL, through the
    SSO fetch guard (https, public address, no redirects, size cap, timeout). Only ever called
    by an admin's explicit save or refresh, never at sign-in."""
    url = fetch.clean_url(url, field)
    host = urlsplit(url).hostname or url
    try:
        body = fetch.get(url, host, accept="application/samlmetadata+xml, application/xml, "
                         "text/xml", max_bytes=MAX_METADATA_BYTES)
    except fetch.FetchError as exc:
        if exc.reason == "fetch_refused":
            raise InvalidInput.field(field, f"Refused: {exc.detail}; Station fetches metadata "
                                            "only from public addresses.") from exc
        raise InvalidInput.field(field, f"Could not fetch the metadata: {exc.detail}.") from exc
    try:
        xml = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput.field(field, "The URL did not return SAML metadata XML "
                                        "(not UTF-8).") from exc
    return url, xml, parse_idp_metadata(xml, field)


def clean_idp_config(*, metadata_xml: str = "", entity_id: str = "", sso_url: str = "",
                     x509cert: str = "") -> IdpConfig:
    """Metadata XML, or the three values by hand; every problem is a field error."""
    if metadata_xml.strip():
        return parse_idp_metadata(metadata_xml)
    errors: dict[str, list[str]] = {}
    values: dict[str, str] = {}
    for name, raw, clean in (("entity_id", entity_id, _clean_entity_id),
                             ("sso_url", sso_url, _clean_sso_url),
                             ("x509cert", x509cert, _clean_cert)):
        try:
            values[name] = clean(raw, name)
        except InvalidInput as exc:
            errors.update(exc.errors or {name: [str(exc)]})
    if errors:
        raise InvalidInput("Give the IdP metadata URL or XML, or its entity id, single sign-on "
                           "URL and signing certificate.", errors=errors)
    return IdpConfig(**values)


# --- the service provider side (what the IdP admin types in) ------------------------------


@dataclass(frozen=True)
class SpValues:
    entity_id: str
    acs_url: str
    metadata_url: str
    login_url: str


def sp_values(org_slug: str) -> SpValues:
    base = settings.PUBLIC_URL.rstrip("/")
    metadata = base + reverse("saml_metadata", args=[org_slug])
    return SpValues(
        entity_id=metadata,  # allauth's default: the SP entity id is its metadata URL
        acs_url=base + reverse("saml_acs", args=[org_slug]),
        metadata_url=metadata,
        login_url=base + reverse("saml_login", args=[org_slug]),
    )


def provider_settings(org_slug: str, idp: IdpConfig) -> dict[str, Any]:
    """`SocialApp.settings` for allauth's SAML provider."""
    sp = sp_values(org_slug)
    return {
        "idp": {"entity_id": idp.entity_id, "sso_url": idp.sso_url, "x509cert": idp.x509cert},
        # Fixed from STATION_PUBLIC_URL, never from the request's Host header.
        "sp": {"entity_id": sp.entity_id},
        "advanced": dict(SECURITY),
        # The uid is the NameID (allauth falls back to it when no attribute maps "uid").
        "attribute_mapping": {
            "email": [
                "email", "mail", "urn:oid:0.9.2342.19200300.100.1.3",
                "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
            ],
            "first_name": [
                "givenName", "urn:oid:2.5.4.42",
                "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname",
            ],
            "last_name": [
                "sn", "urn:oid:2.5.4.4",
                "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname",
            ],
        },
    }
