"""What a provisioned user may do in the org: the role their groups give, and cutting access.

Role precedence: every SCIM group the user is in whose displayName has a GroupRoleMapping
contributes that role; the role with the most permissions wins (ties: the order of
tenants.permissions.ROLES), so admin > developer > operator > auditor > viewer > billing.
A group mapped to nothing contributes nothing. With no mapped group, a user whose role SCIM
manages gets the default: the org's SSO connection's default role when it has one (SAML, else
OIDC; blank: no access), else viewer. Owners are never demoted or promoted by the IdP (as with SSO).
"""

from __future__ import annotations

from typing import Any

from station.accounts.sessions import end_all_sessions
from station.identity.models import GroupRoleMapping, SamlConnection
from station.scim.models import ScimGroup, ScimUser
from tenants import roles
from tenants import services as tenant_services
from tenants.authz import Principal
from tenants.context import require_org_id
from tenants.models import ApiKey, Membership
from tenants.permissions import OWNER_ROLE, ROLES

FALLBACK_ROLE = "viewer"
_ORDER = list(ROLES)


def strongest_role(names: list[str]) -> str | None:
    """The mapped role granting the most permissions now (built-in or the org's custom
    roles; ties: built-ins in ROLES order, then by name). Unknown names and owner grant
    nothing."""
    org_id = require_org_id()
    granted = {n: roles.permissions_of(org_id, n) for n in set(names) if n != OWNER_ROLE}
    valid = [n for n, perms in granted.items() if perms]
    if not valid:
        return None
    return max(valid, key=lambda n: (len(granted[n]), -_ORDER.index(n) if n in ROLES else
                                     -len(_ORDER), n))


def default_role() -> str | None:
    """The org's SSO connection's default role (SAML, else OIDC when that model exists)."""
    from station.identity import models as identity_models

    candidates = [SamlConnection, getattr(identity_models, "OidcConnection", None)]
    for model in candidates:
        connection = model.objects.first() if model is not None else None
        if connection is not None:
            return str(connection.default_role) or None
    return FALLBACK_ROLE


def mapped_role(scim_user: ScimUser) -> str | None:
    names = list(ScimGroup.objects.filter(memberships__scim_user=scim_user)
                 .values_list("display_name", flat=True))
    if not names:
        return None
    roles = list(GroupRoleMapping.objects.filter(group__in=names).values_list("role", flat=True))
    return strongest_role(roles)


def end_sessions_of(user_id: Any) -> int:
    """End every session of the user (station.accounts: tracked ones by key, plus a scan for
    untracked ones). Sessions are per person, not per org: this signs them out of every org
    (the safe side); their other memberships are untouched."""
    return end_all_sessions(user_id)


def cut_access(actor: Principal, scim_user: ScimUser) -> dict[str, Any]:
    """Membership removed, the user's API keys in this org revoked, their sessions ended."""
    summary: dict[str, Any] = {}
    membership = Membership.objects.select_related("user").filter(user_id=scim_user.user_id).first()
    if membership is not None:
        summary["membership_removed"] = membership.role
        tenant_services.remove_member(actor=actor, membership=membership)
    keys = list(ApiKey.objects.filter(created_by_id=scim_user.user_id, revoked_at__isnull=True))
    for key in keys:
        tenant_services.revoke_api_key(actor=actor, api_key=key)
    if keys:
        summary["api_keys_revoked"] = [key.display for key in keys]
    summary["sessions_ended"] = end_sessions_of(scim_user.user_id)
    return summary


def apply_access(actor: Principal, scim_user: ScimUser) -> dict[str, Any]:
    """Bring the membership in line with `active` and the user's groups; returns what changed."""
    if not scim_user.active:
        return cut_access(actor, scim_user)
    membership = Membership.objects.select_related("user").filter(user_id=scim_user.user_id).first()
    role = mapped_role(scim_user)
    if role is not None and not scim_user.role_managed:
        scim_user.role_managed = True
        scim_user.save(update_fields=["role_managed"])
    if role is None:
        if not scim_user.role_managed:
            if membership is None:  # an unmanaged user with no membership: the default
                role = default_role()
            else:
                return {}
        else:
            role = default_role()
    if membership is None:
        if role is None:
            return {}
        Membership.objects.create(user_id=scim_user.user_id, role=role)
        return {"membership_created": role}
    if membership.role == OWNER_ROLE:
        return {}
    if role is None:
        return cut_access(actor, scim_user)
    if membership.role != role:
        before = membership.role
        tenant_services.change_member_role(actor=actor, membership=membership, role=role)
        return {"role": {"from": before, "to": role}}
    return {}
