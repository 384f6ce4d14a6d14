"""Writes of the identity app: SAML connection, verified domains, group mappings.

Each takes the acting principal, checks `org.manage`, writes and records its audit event in
one transaction (STYLE.md §1).
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from audit import services as audit
from station.core.errors import Conflict, InvalidInput
from station.identity import dns, oidc, oidc_secret, saml
from station.identity.models import (
    GroupRoleMapping,
    OidcConnection,
    SamlConnection,
    VerifiedDomain,
)
from station.scim.provisioning import reevaluate_group_by_name
from tenants import platform, roles
from tenants.authz import Principal, authorize
from tenants.models import Organization

PERMISSION = "org.manage"
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")

# --- SAML connection ----------------------------------------------------------------------


def _clean_role(org: Organization, role: str, field: str, *,
                allow_blank: bool = False) -> str:
    """A built-in (never owner) or custom role of `org` an IdP may grant."""
    role = (role or "").strip()
    if not role and allow_blank:
        return ""
    if role == "owner":
        raise InvalidInput.field(field, "An IdP group cannot grant owner: owners are made by "
                                        "an owner, in Station.")
    return roles.validate_role(org, role, field, lock=True)


_SETTINGS = ("enabled", "allow_idp_initiated", "enforce_sso", "group_attribute",
             "default_role")


@transaction.atomic
def configure_saml(
    *, actor: Principal, org: Organization, metadata_xml: str = "", entity_id: str = "",
    sso_url: str = "", x509cert: str = "", metadata_url: str = "",
    refresh_metadata: bool = False, enabled: bool | None = None,
    allow_idp_initiated: bool | None = None, enforce_sso: bool | None = None,
    group_attribute: str | None = None, default_role: str | None = None,
) -> SamlConnection:
    """Create or change the org's SAML IdP. Without IdP values the current IdP is kept (to
    change only settings); None leaves a setting as it is. `metadata_url` reads the IdP's
    metadata from that URL now; `refresh_metadata` reads it again from the stored URL (both
    explicit admin actions: a sign-in never fetches)."""
    authorize(actor, PERMISSION, org)
    fetched = _fetch_metadata(metadata_url, refresh_metadata, by_hand=any(
        v.strip() for v in (metadata_xml, entity_id, sso_url, x509cert)))
    connection = SamlConnection.objects.select_for_update().first()
    if (fetched and not metadata_url.strip() and connection
            and connection.metadata_url != fetched[0]):
        raise Conflict("The metadata URL changed meanwhile; reload and try again.")
    given = fetched is not None or any(
        v.strip() for v in (metadata_xml, entity_id, sso_url, x509cert))
    if fetched is not None:
        idp = fetched[2]
    elif given or connection is None:
        idp = saml.clean_idp_config(metadata_xml=metadata_xml, entity_id=entity_id,
                                    sso_url=sso_url, x509cert=x509cert)
    else:
        idp = saml.IdpConfig(connection.idp_entity_id, connection.idp_sso_url,
                             connection.idp_x509cert)
    if default_role is not None:
        default_role = _clean_role(org, default_role, "default_role", allow_blank=True)
    if group_attribute is not None:
        group_attribute = group_attribute.strip()
        if len(group_attribute) > 500:
            raise InvalidInput.field("group_attribute", "At most 500 characters.")

    before = _snapshot(connection)
    if connection is None:
        connection = SamlConnection(organization=org)
    connection.idp_entity_id = idp.entity_id
    connection.idp_sso_url = idp.sso_url
    connection.idp_x509cert = idp.x509cert
    if fetched is not None:
        connection.metadata_url, connection.metadata_xml = fetched[0], fetched[1].strip()
        connection.metadata_fetched_at = timezone.now()
    elif given:  # pasted metadata or values by hand: no longer from the URL
        connection.metadata_xml = metadata_xml.strip()
        connection.metadata_url, connection.metadata_fetched_at = "", None
    for name, value in (("enabled", enabled), ("allow_idp_initiated", allow_idp_initiated),
                        ("enforce_sso", enforce_sso), ("group_attribute", group_attribute),
                        ("default_role", default_role)):
        if value is not None:
            setattr(connection, name, value)
    connection.updated_at = timezone.now()
    connection.save()
    after = _snapshot(connection)
    changes: dict[str, Any] = {k: audit.change(before.get(k), v) for k, v in after.items()
                               if before.get(k) != v}
    if fetched is not None:
        # Even when nothing changed: the log shows that the admin re-read the IdP.
        changes["metadata_fetched_from"] = fetched[0]
    audit.record("identity.saml_configured", actor=actor, target=connection,
                 target_label=connection.idp_entity_id, changes=changes)
    return connection


def _snapshot(connection: SamlConnection | None) -> dict[str, Any]:
    if connection is None:
        return {}
    return {
        "idp_entity_id": connection.idp_entity_id, "idp_sso_url": connection.idp_sso_url,
        # The certificate is public, but long: its tail tells two apart in the log.
        "idp_x509cert": f"…{connection.idp_x509cert[-16:]}",
        "metadata_url": connection.metadata_url,
        **{name: getattr(connection, name) for name in _SETTINGS},
    }


def _fetch_metadata(url: str, refresh: bool, *,
                    by_hand: bool) -> tuple[str, str, saml.IdpConfig] | None:
    """(URL, XML, IdP values) fetched now when asked to, else None. Runs before the row lock
    is taken, so a slow IdP never holds it."""
    if not (url.strip() or refresh):
        return None
    if by_hand:
        raise InvalidInput.field("metadata_url", "Give the metadata URL, the metadata XML or "
                                                 "the IdP's values by hand: only one of them.")
    if not url.strip():
        current = SamlConnection.objects.first()
        url = current.metadata_url if current else ""
        if not url:
            raise InvalidInput.field("metadata_url", "This IdP was not set from a metadata "
                                                     "URL: give one to read.")
    return saml.fetch_idp_metadata(url)


@transaction.atomic
def remove_saml(*, actor: Principal, org: Organization) -> None:
    authorize(actor, PERMISSION, org)
    connection = SamlConnection.objects.select_for_update().first()
    if connection is None:
        from station.core.errors import NotFound

        raise NotFound("This organization has no SAML identity provider.")
    audit.record("identity.saml_removed", actor=actor, target=connection,
                 target_label=connection.idp_entity_id, changes=_snapshot(connection))
    connection.delete()


# --- verified domains ------------------------------------------------------------------------


def normalize_domain(raw: str, field: str = "domain") -> str:
    domain = (raw or "").strip().rstrip(".").lower()
    if domain.startswith("@"):
        domain = domain[1:]
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise InvalidInput.field(field, "This is not a valid domain name.") from exc
    labels = domain.split(".")
    if len(domain) > 253 or len(labels) < 2 or not all(_LABEL.match(x) for x in labels):
        raise InvalidInput.field(field, "Give a domain name such as example.com (no scheme, "
                                        "no path).")
    return domain


def _refuse_if_verified_elsewhere(org: Organization, domain: str) -> None:
    owner = platform.org_of_verified_domain(domain)
    if owner is not None and owner != org.pk:
        raise Conflict(f"{domain} is already verified by another organization.",
                       errors={"domain": ["Already verified by another organization."]})


@transaction.atomic
def add_domain(*, actor: Principal, org: Organization, domain: str) -> VerifiedDomain:
    authorize(actor, PERMISSION, org)
    domain = normalize_domain(domain)
    if VerifiedDomain.objects.filter(domain=domain).exists():
        raise Conflict(f"{domain} is already listed.",
                       errors={"domain": ["Already listed for this organization."]})
    _refuse_if_verified_elsewhere(org, domain)
    row = VerifiedDomain.objects.create(organization=org, domain=domain,
                                        token=secrets.token_urlsafe(24))
    audit.record("identity.domain_added", actor=actor, target=row, changes={"domain": domain})
    return row


@transaction.atomic
def verify_domain(*, actor: Principal, domain: VerifiedDomain) -> VerifiedDomain:
    org = domain.organization
    authorize(actor, PERMISSION, org)
    if domain.verified_at is not None:
        return domain
    _refuse_if_verified_elsewhere(org, domain.domain)
    records = dns.resolver().txt_records(domain.domain)
    if domain.txt_value not in [r.strip() for r in records]:
        raise InvalidInput.field(
            "domain", f"No TXT record {domain.txt_value!r} found at {domain.domain}. DNS "
                      "changes can take a while to appear; try again later.")
    domain.verified_at = timezone.now()
    try:
        with transaction.atomic():
            domain.save(update_fields=["verified_at"])
    except IntegrityError as exc:  # another org verified it a moment ago
        raise Conflict(f"{domain.domain} is already verified by another organization.",
                       errors={"domain": ["Already verified by another organization."]}) from exc
    audit.record("identity.domain_verified", actor=actor, target=domain,
                 changes={"domain": domain.domain})
    return domain


@transaction.atomic
def remove_domain(*, actor: Principal, domain: VerifiedDomain) -> None:
    authorize(actor, PERMISSION, domain.organization)
    audit.record("identity.domain_removed", actor=actor, target=domain,
                 changes={"domain": domain.domain, "was_verified": domain.verified_at is not None})
    domain.delete()


# --- group → role mappings ----------------------------------------------------------------


@transaction.atomic
def set_group_mapping(*, actor: Principal, org: Organization, group: str,
                      role: str) -> GroupRoleMapping:
    authorize(actor, PERMISSION, org)
    group = (group or "").strip()
    if not group or len(group) > 500:
        raise InvalidInput.field("group", "Give the group's name as the IdP sends it "
                                          "(1–500 characters).")
    role = _clean_role(org, role, "role")
    mapping = GroupRoleMapping.objects.select_for_update().filter(group=group).first()
    before = mapping.role if mapping else None
    if mapping is None:
        mapping = GroupRoleMapping.objects.create(organization=org, group=group, role=role)
    elif mapping.role != role:
        mapping.role = role
        mapping.save(update_fields=["role"])
    changes: dict[str, Any] = {"group": group, "role": audit.change(before, role)}
    if before != role:
        _reapply_to_scim_members(actor, group, changes)
    audit.record("identity.group_mapping_set", actor=actor, target=mapping, changes=changes)
    return mapping


@transaction.atomic
def delete_group_mapping(*, actor: Principal, mapping: GroupRoleMapping) -> None:
    authorize(actor, PERMISSION, mapping.organization)
    changes: dict[str, Any] = {"group": mapping.group, "role": mapping.role}
    mapping_pk = mapping.pk
    mapping.delete()
    mapping.pk = mapping_pk  # Django clears it; the audit event names the deleted row
    _reapply_to_scim_members(actor, mapping.group, changes)
    audit.record("identity.group_mapping_deleted", actor=actor, target=mapping,
                 changes=changes)


def _reapply_to_scim_members(actor: Principal, group: str, changes: dict[str, Any]) -> None:
    """Members the IdP provisioned by SCIM get the new mapping now (SSO-only members get it
    at their next sign-in, when the IdP sends their groups again)."""
    effects = reevaluate_group_by_name(actor=actor, name=group)
    if effects:
        changes["access"] = effects


# --- OIDC connection -----------------------------------------------------------------------

_OIDC_SETTINGS = ("scopes", "groups_claim", "default_role", "enabled", "enforce_sso")


def _oidc_snapshot(connection: OidcConnection | None) -> dict[str, Any]:
    if connection is None:
        return {}
    # The client secret is never recorded: only whether one is set.
    return {"issuer": connection.issuer, "client_id": connection.client_id,
            "authorization_endpoint": connection.authorization_endpoint,
            "token_endpoint": connection.token_endpoint, "jwks_uri": connection.jwks_uri,
            "client_secret_set": connection.has_secret,
            **{name: getattr(connection, name) for name in _OIDC_SETTINGS}}


def _clean_scopes(raw: str) -> str:
    scopes = [s for s in (raw or "").split() if s]
    if any(len(s) > 100 or not s.isprintable() for s in scopes):
        raise InvalidInput.field("scopes", "Scopes are short space-separated words.")
    if "openid" not in scopes:
        scopes.insert(0, "openid")
    return " ".join(dict.fromkeys(scopes))


@transaction.atomic
def configure_oidc(
    *, actor: Principal, org: Organization, issuer: str = "", client_id: str = "",
    client_secret: str = "", discover: bool = False, authorization_endpoint: str = "",
    token_endpoint: str = "", jwks_uri: str = "", scopes: str | None = None,
    groups_claim: str | None = None, default_role: str | None = None,
    enabled: bool | None = None, enforce_sso: bool | None = None,
) -> OidcConnection:
    """Create or change the org's OIDC provider. Blank values keep what is stored (the secret
    included); `discover` reads the endpoints from the issuer's discovery document now."""
    authorize(actor, PERMISSION, org)
    connection = OidcConnection.objects.select_for_update().first()
    before = _oidc_snapshot(connection)
    if connection is None:
        connection = OidcConnection(organization=org)
    if issuer.strip():
        connection.issuer = oidc.clean_url(issuer, "issuer").rstrip("/")
    if not connection.issuer:
        raise InvalidInput.field("issuer", "The issuer URL is required.")
    if client_id.strip():
        if len(client_id.strip()) > 500:
            raise InvalidInput.field("client_id", "At most 500 characters.")
        connection.client_id = client_id.strip()
    if not connection.client_id:
        raise InvalidInput.field("client_id", "The client id is required.")
    if discover:
        found = oidc.discover(connection.issuer)
        connection.authorization_endpoint = found.authorization_endpoint
        connection.token_endpoint = found.token_endpoint
        connection.jwks_uri = found.jwks_uri
    for name, value in (("authorization_endpoint", authorization_endpoint),
                        ("token_endpoint", token_endpoint), ("jwks_uri", jwks_uri)):
        if value.strip():
            setattr(connection, name, oidc.clean_url(value, name))
        if not getattr(connection, name):
            raise InvalidInput.field(name, "Required: give it, or read it with discover.")
    if scopes is not None:
        connection.scopes = _clean_scopes(scopes)
    if groups_claim is not None:
        if len(groups_claim.strip()) > 200:
            raise InvalidInput.field("groups_claim", "At most 200 characters.")
        connection.groups_claim = groups_claim.strip()
    if default_role is not None:
        connection.default_role = _clean_role(org, default_role, "default_role", allow_blank=True)
    for name, flag in (("enabled", enabled), ("enforce_sso", enforce_sso)):
        if flag is not None:
            setattr(connection, name, flag)
    if len(client_secret) > 1000:
        raise InvalidInput.field("client_secret", "At most 1000 characters.")
    if not client_secret and not connection.has_secret:
        raise InvalidInput.field("client_secret", "The client secret is required.")
    connection.updated_at = timezone.now()
    connection.save()  # the row's id is part of the secret's AAD
    secret_changed = bool(client_secret)
    if secret_changed:
        oidc_secret.seal_onto(connection, client_secret)
        connection.save(update_fields=["secret_data_key", "secret_nonce", "secret_ciphertext"])
    after = _oidc_snapshot(connection)
    changes: dict[str, Any] = {k: audit.change(before.get(k), v) for k, v in after.items()
                               if before.get(k) != v}
    if secret_changed:
        changes["client_secret_changed"] = True
    if discover:
        changes["discovered"] = True
    audit.record("identity.oidc_configured", actor=actor, target=connection,
                 target_label=connection.issuer, changes=changes)
    return connection


@transaction.atomic
def remove_oidc(*, actor: Principal, org: Organization) -> None:
    authorize(actor, PERMISSION, org)
    connection = OidcConnection.objects.select_for_update().first()
    if connection is None:
        from station.core.errors import NotFound

        raise NotFound("This organization has no OpenID Connect provider.")
    audit.record("identity.oidc_removed", actor=actor, target=connection,
                 target_label=connection.issuer, changes=_oidc_snapshot(connection))
    connection.delete()
