"""Role names, built-in or custom, and their permissions: the one place that resolves them.

Built-in roles are permission sets in code (`tenants.permissions.ROLES`); custom roles are
per-org rows (`CustomRole`), read from the database every time they are asked about, so an
edit takes effect on the next request. A name never means both: custom roles cannot take a
built-in name. Anything that accepts a role name (memberships, environment narrowing, API
keys, IdP group mappings, SCIM) should check it with `role_exists` / `validate_role` and
resolve it with `permissions_of`.

Reads run in the caller's org scope (the tenant manager refuses without one) and filter by
`org_id` as well, so another org's role of the same name is never used.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from station.core.errors import InvalidInput
from tenants.permissions import OWNER_ROLE, PERMISSIONS, ROLE_DESCRIPTIONS, ROLES

if TYPE_CHECKING:
    from tenants.models import Organization

def _org_id(org: Organization | uuid.UUID) -> uuid.UUID:
    return org if isinstance(org, uuid.UUID) else org.pk


def is_built_in(name: str) -> bool:
    return name in ROLES


def custom_permissions(
    org: Organization | uuid.UUID, name: str, *, lock: bool = False
) -> frozenset[str] | None:
    """The permissions of the org's custom role `name`, or None if it has no such role.

    `lock=True` (inside a transaction that is about to assign the role) locks the role's row,
    so a concurrent deletion either sees the new assignment or makes this one fail."""
    from tenants.models import CustomRole

    rows = CustomRole.objects.filter(organization_id=_org_id(org), name=name)
    if lock:
        rows = rows.select_for_update()
    stored = rows.values_list("permissions", flat=True).first()
    return None if stored is None else clean_stored(stored)


def clean_stored(stored: object) -> frozenset[str]:
    """A stored permission list, keeping only registered permissions (fail closed if the
    registry ever loses one that an old row still names)."""
    if not isinstance(stored, list):
        return frozenset()
    return frozenset(p for p in stored if isinstance(p, str) and p in PERMISSIONS)


def role_exists(org: Organization | uuid.UUID, name: str) -> bool:
    """True for a built-in role name or one of this org's custom roles."""
    return is_built_in(name) or custom_permissions(org, name) is not None


def permissions_of(org: Organization | uuid.UUID, name: str | None) -> frozenset[str]:
    """The permissions a role name grants in `org` now (empty for an unknown name)."""
    if not name:
        return frozenset()
    if name in ROLES:
        return ROLES[name]
    return custom_permissions(org, name) or frozenset()


def validate_role(
    org: Organization | uuid.UUID, name: str, field: str = "role", *, lock: bool = False
) -> str:
    """`name` if it is a role in `org`; otherwise a 422 on `field` listing the choices.
    Pass `lock=True` when the caller's transaction goes on to assign the role."""
    known = isinstance(name, str) and (
        is_built_in(name) or custom_permissions(org, name, lock=lock) is not None)
    if not known:
        choices = ", ".join(role_names(org))
        raise InvalidInput.field(field, f"Unknown role {name!r}; choose one of {choices}.")
    return name


def is_owner(name: str | None) -> bool:
    """Only the built-in owner role counts as owner (a custom role never does, whatever it
    holds): the last-owner rule and owner-only safeguards look at this."""
    return name == OWNER_ROLE


@dataclass(frozen=True)
class RoleInfo:
    name: str
    description: str
    permissions: frozenset[str]
    built_in: bool
    created_at: datetime | None = None  # custom roles only
    updated_at: datetime | None = None


def list_roles(org: Organization | uuid.UUID) -> list[RoleInfo]:
    """Built-in roles (in their declared order), then the org's custom roles by name."""
    from tenants.models import CustomRole

    built_in = [RoleInfo(name, ROLE_DESCRIPTIONS.get(name, ""), perms, True)
                for name, perms in ROLES.items()]
    custom = [RoleInfo(r.name, r.description, clean_stored(r.permissions), False,
                       r.created_at, r.updated_at)
              for r in CustomRole.objects.filter(organization_id=_org_id(org)).order_by("name")]
    return built_in + custom


def get_role(org: Organization | uuid.UUID, name: str) -> RoleInfo | None:
    return next((r for r in list_roles(org) if r.name == name), None)


def role_names(org: Organization | uuid.UUID) -> list[str]:
    return [r.name for r in list_roles(org)]


def role_choices(org: Organization | uuid.UUID, *, long: bool = False,
                 exclude: Iterable[str] = ()) -> list[tuple[str, str]]:
    """(value, label) pairs for a form's role select: built-ins then custom roles."""
    skip = set(exclude)
    out = []
    for role in list_roles(org):
        if role.name in skip:
            continue
        label = role.name if role.built_in else f"{role.name} (custom)"
        if long and role.description:
            label = f"{label} — {role.description}"
        out.append((role.name, label))
    return out
