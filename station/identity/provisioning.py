"""Just-in-time provisioning: who an accepted SAML assertion or OIDC ID token logs in, and with
which role.

Accounts are keyed by (IdP, subject) in `SsoIdentity`: (SAML entity id, NameID) or (OIDC
issuer, `sub`). An email address is only a
hint for the first login, and only when it is on a domain this org verified, the account it
names belongs to no other organization and has no other identity at this org's IdP. So one
org's IdP can never sign in a person who belongs to another org by asserting their email.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone

from audit import services as audit
from station.identity.models import (
    GroupRoleMapping,
    OidcConnection,
    SamlConnection,
    SsoIdentity,
    VerifiedDomain,
)
from tenants import platform, roles
from tenants import services as tenant_services
from tenants.authz import Principal
from tenants.models import Membership, User
from tenants.permissions import OWNER_ROLE

# Either kind of org IdP; both expose organization_id, idp_entity_id and default_role.
Connection = SamlConnection | OidcConnection


class SsoRefused(Exception):
    """A valid assertion that still may not sign anyone in. `reason` is the audited code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class SsoAssertion:
    idp_entity_id: str
    subject: str
    email: str = ""
    name: str = ""
    groups: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SsoLogin:
    user: User
    membership: Membership
    role: str
    user_created: bool
    membership_created: bool


def idp_principal(connection: Connection) -> Principal:
    kind = "OIDC" if isinstance(connection, OidcConnection) else "SAML"
    return Principal.system(f"{kind} IdP {connection.idp_entity_id}")


def role_for_groups(connection: Connection, groups: list[str]) -> str | None:
    """The strongest role any of the user's groups maps to, else the connection's default."""
    mapped = list(GroupRoleMapping.objects.filter(group__in=groups).values_list("role",
                                                                                 flat=True))
    if mapped:
        org_id = connection.organization_id
        return max(mapped, key=lambda role: len(roles.permissions_of(org_id, role)))
    return connection.default_role or None


def _email_domain(email: str) -> str:
    return email.rpartition("@")[2].lower() if "@" in email else ""


def email_domain_verified(email: str) -> bool:
    """Whether the email's domain is one this org (the current scope) verified."""
    domain = _email_domain(email.strip())
    return bool(domain) and VerifiedDomain.objects.filter(
        domain=domain, verified_at__isnull=False).exists()


def _account_to_link(connection: Connection, assertion: SsoAssertion) -> User | None:
    """First sign-in of a subject: the existing account to link, or None for a new one.
    Reads only; SsoRefused when the email may not be used."""
    email = assertion.email.strip().lower()
    if not email:
        raise SsoRefused("no_email", "Your identity provider sent no email address.")
    domain = _email_domain(email)
    if not email_domain_verified(email):
        raise SsoRefused("email_domain_not_verified",
                         f"{domain} is not a verified domain of this organization.")
    user = User.objects.filter(email=email).first()
    if user is None:
        return None
    others = [o for o in platform.orgs_for_user(user.pk)
              if o.id != connection.organization_id]
    if others:
        raise SsoRefused("account_in_another_organization",
                         "An account with this email belongs to another organization; this "
                         "organization's identity provider cannot sign it in.")
    if SsoIdentity.objects.filter(user=user).exists():
        # Already known to this org's IdP under another subject: an email never re-links.
        raise SsoRefused("email_linked_to_another_subject",
                         "This email already belongs to another identity at your identity "
                         "provider.")
    return user


@dataclass(frozen=True)
class SsoPlan:
    """What `sso_login` will do for an accepted assertion, decided before any write. The
    console's connection test shows it without carrying it out (`plan_sso_login`)."""

    identity: SsoIdentity | None  # the subject's existing link, if any
    user: User | None  # the account signed in; None: a new one is created
    email: str  # normalized; the new account's email
    membership: Membership | None  # the current membership, if any
    role: str  # the membership's role after the sign-in
    mapped_role: str | None  # what the groups (or the default role) give


def plan_sso_login(*, connection: Connection, assertion: SsoAssertion) -> SsoPlan:
    """Every rule of JIT provisioning, reading only (in the org's scope). Raises SsoRefused
    exactly where a sign-in would be refused; `sso_login` carries the plan out."""
    identity = (SsoIdentity.objects.select_related("user")
                .filter(idp_entity_id=assertion.idp_entity_id, subject=assertion.subject)
                .first())
    user = identity.user if identity is not None else _account_to_link(connection, assertion)
    if user is not None and not user.is_active:
        raise SsoRefused("account_disabled", "This account is disabled.")
    mapped = role_for_groups(connection, assertion.groups)
    membership = Membership.objects.filter(user=user).first() if user is not None else None
    is_owner = membership is not None and membership.role == OWNER_ROLE
    if mapped is None and not is_owner:
        raise SsoRefused("no_mapped_group",
                         "None of your groups gives access to this organization.")
    # The IdP is the source of truth for roles at each login; it never touches owners.
    role = membership.role if is_owner and membership is not None else mapped
    assert role is not None
    return SsoPlan(identity=identity, user=user, email=assertion.email.strip().lower(),
                   membership=membership, role=role, mapped_role=mapped)


@transaction.atomic
def sso_login(*, connection: Connection, assertion: SsoAssertion) -> SsoLogin:
    """Find or create the user and membership for an accepted assertion (in the org's scope)."""
    plan = plan_sso_login(connection=connection, assertion=assertion)
    user_created = plan.user is None
    user = plan.user or User.objects.create_user(email=plan.email, name=assertion.name[:200])
    identity = plan.identity or SsoIdentity.objects.create(
        organization_id=connection.organization_id, idp_entity_id=assertion.idp_entity_id,
        subject=assertion.subject, user=user)
    actor = idp_principal(connection)
    membership = plan.membership
    membership_created = membership is None
    if membership is None:
        membership = Membership.objects.create(organization_id=connection.organization_id,
                                               user=user, role=plan.role)
    elif membership.role != plan.role:
        membership = tenant_services.change_member_role(actor=actor, membership=membership,
                                                        role=plan.role)
    if user_created or membership_created:
        audit.record("identity.sso_provisioned", actor=actor, target=membership,
                     target_label=user.email,
                     changes={"email": user.email, "subject": assertion.subject,
                              "idp": assertion.idp_entity_id, "role": membership.role,
                              "user_created": user_created,
                              "membership_created": membership_created})
    identity.last_login_at = timezone.now()
    identity.save(update_fields=["last_login_at"])
    return SsoLogin(user, membership, membership.role, user_created, membership_created)


def sign_in(*, connection: Connection, assertion: SsoAssertion,
            details: dict[str, Any]) -> SsoLogin:
    """An accepted assertion's sign-in (SAML and OIDC alike): provisioning and its
    `identity.sso_login_succeeded` event in one transaction. Raises SsoRefused."""
    with transaction.atomic():
        result = sso_login(connection=connection, assertion=assertion)
        audit.record("identity.sso_login_succeeded", actor=Principal.for_user(result.user),
                     target=result.membership, target_label=result.user.email,
                     changes={"idp": assertion.idp_entity_id, "subject": assertion.subject,
                              "role": result.role, **details, "groups": assertion.groups})
    return result
