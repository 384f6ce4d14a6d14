"""Per-org enterprise identity: the SAML connection, verified email domains, group → role
mappings, the (IdP, subject) → user links, and the single-use / replay stores of SAML.

All are tenant tables (RLS by org). The two global guarantees SAML needs — an AuthnRequest id
used once, an assertion id accepted once per IdP, a domain verified by one org only — are
unique indexes, which PostgreSQL enforces across every org's rows whatever RLS lets us see.
"""

from __future__ import annotations

import uuid
from typing import ClassVar

from django.db import models
from django.db.models import Q
from django.utils import timezone

from tenants.models import TenantModel, User


class SamlConnection(TenantModel):
    """The org's SAML identity provider. At most one per org."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    idp_entity_id = models.CharField(max_length=1000)
    idp_sso_url = models.URLField(max_length=2000)
    idp_x509cert = models.TextField(help_text="The IdP's signing certificate (PEM body)")
    metadata_xml = models.TextField(blank=True, help_text="The IdP metadata it came from, if any")
    # Where that metadata was fetched from, so the admin sees its source and can refresh it
    # (only on an explicit action: a sign-in never fetches it).
    metadata_url = models.CharField(max_length=2000, blank=True, default="")
    metadata_fetched_at = models.DateTimeField(null=True, blank=True)
    enabled = models.BooleanField(default=True)
    # Off by default: an unsolicited response cannot be bound to a browser session.
    allow_idp_initiated = models.BooleanField(default=False)
    enforce_sso = models.BooleanField(default=False)
    group_attribute = models.CharField(max_length=500, blank=True, default="groups")
    # Role given when no mapped group matches; blank refuses such logins.
    default_role = models.CharField(max_length=64, blank=True, default="viewer")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantModel.Meta):
        constraints: ClassVar[list[models.BaseConstraint]] = [
            *TenantModel.Meta.constraints,
            models.UniqueConstraint(fields=["organization"], name="uniq_saml_connection_per_org"),
        ]

    def __str__(self) -> str:
        return f"SAML {self.idp_entity_id}"


class VerifiedDomain(TenantModel):
    """An email domain the org claims; proven by a DNS TXT record `station-verification=…`."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    domain = models.CharField(max_length=253)
    token = models.CharField(max_length=64)
    verified_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantModel.Meta):
        constraints: ClassVar[list[models.BaseConstraint]] = [
            *TenantModel.Meta.constraints,
            models.UniqueConstraint(fields=["organization", "domain"],
                                    name="uniq_domain_per_org"),
            # One org owns a verified domain, across all orgs.
            models.UniqueConstraint(fields=["domain"], condition=Q(verified_at__isnull=False),
                                    name="uniq_verified_domain"),
        ]
        ordering = ["domain"]

    def __str__(self) -> str:
        return self.domain

    @property
    def txt_value(self) -> str:
        return f"station-verification={self.token}"


class GroupRoleMapping(TenantModel):
    """An IdP group (a value of the connection's group attribute) → a built-in role."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    group = models.CharField(max_length=500)
    role = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantModel.Meta):
        constraints: ClassVar[list[models.BaseConstraint]] = [
            *TenantModel.Meta.constraints,
            models.UniqueConstraint(fields=["organization", "group"],
                                    name="uniq_group_mapping_per_org"),
        ]
        ordering = ["group"]

    def __str__(self) -> str:
        return f"{self.group} → {self.role}"


class SsoIdentity(TenantModel):
    """A user as known to the org's IdP: (IdP entity id, NameID). Never matched by email."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    idp_entity_id = models.CharField(max_length=1000)
    subject = models.CharField(max_length=1000)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    last_login_at = models.DateTimeField(null=True, blank=True)

    class Meta(TenantModel.Meta):
        constraints: ClassVar[list[models.BaseConstraint]] = [
            *TenantModel.Meta.constraints,
            models.UniqueConstraint(fields=["organization", "idp_entity_id", "subject"],
                                    name="uniq_sso_identity"),
        ]

    def __str__(self) -> str:
        return f"{self.subject} at {self.idp_entity_id}"


class SamlRequest(TenantModel):
    """An AuthnRequest we sent; its id may be answered (InResponseTo) once, before expiry."""

    id = models.BigAutoField(primary_key=True)
    request_id = models.CharField(max_length=100, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.request_id


class SamlAssertionSeen(TenantModel):
    """Replay cache: an accepted assertion id per IdP, kept until its NotOnOrAfter."""

    id = models.BigAutoField(primary_key=True)
    idp_entity_id = models.CharField(max_length=1000)
    assertion_id = models.CharField(max_length=200)
    not_on_or_after = models.DateTimeField()

    class Meta(TenantModel.Meta):
        constraints: ClassVar[list[models.BaseConstraint]] = [
            *TenantModel.Meta.constraints,
            models.UniqueConstraint(fields=["idp_entity_id", "assertion_id"],
                                    name="uniq_saml_assertion_seen"),
        ]

    def __str__(self) -> str:
        return self.assertion_id


class OidcConnection(TenantModel):
    """The org's OpenID Connect provider. At most one per org.

    The client secret is sealed under the org's vault data key (AES-GCM bound to the org and
    this row), never stored or shown in clear: Station must send it to the token endpoint, so
    it cannot be hashed. Endpoints are stored (set by hand or by an explicit discovery fetch),
    so a login never fetches the discovery document.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    issuer = models.CharField(max_length=1000)
    client_id = models.CharField(max_length=500)
    secret_data_key = models.ForeignKey("vault.DataKey", on_delete=models.PROTECT,
                                        related_name="+", null=True, blank=True)
    secret_nonce = models.BinaryField(default=b"")
    secret_ciphertext = models.BinaryField(default=b"")
    authorization_endpoint = models.URLField(max_length=2000)
    token_endpoint = models.URLField(max_length=2000)
    jwks_uri = models.URLField(max_length=2000)
    scopes = models.CharField(max_length=500, default="openid email profile")
    groups_claim = models.CharField(max_length=200, blank=True, default="groups")
    default_role = models.CharField(max_length=64, blank=True, default="viewer")
    enabled = models.BooleanField(default=True)
    enforce_sso = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantModel.Meta):
        constraints: ClassVar[list[models.BaseConstraint]] = [
            *TenantModel.Meta.constraints,
            models.UniqueConstraint(fields=["organization"], name="uniq_oidc_connection_per_org"),
        ]

    def __str__(self) -> str:
        return f"OIDC {self.issuer}"

    @property
    def idp_entity_id(self) -> str:
        """The IdP key of SsoIdentity rows made through this connection (the issuer)."""
        return self.issuer

    @property
    def group_attribute(self) -> str:
        return self.groups_claim

    @property
    def has_secret(self) -> bool:
        return self.secret_data_key_id is not None
