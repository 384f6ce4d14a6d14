"""One function answers every access question: `authorize(principal, permission, org, env)`.

A principal is a user (through their membership and any per-environment narrowing) or an API
key (its scopes, intersected with its creator's permissions *at use time*, and its optional
environment binding).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from station.core.errors import AccessDenied
from tenants import roles
from tenants.permissions import BOUND_KEY_PERMISSIONS, ROLES, check_permission_name

if TYPE_CHECKING:
    from tenants.models import ApiKey, Environment, Organization, User


@dataclass
class Principal:
    kind: Literal["user", "api_key", "run", "system"]
    user: User | None = None
    api_key: ApiKey | None = None
    label: str = ""
    run_id: uuid.UUID | None = None
    # For an API key: its creator's (org role, role in the key's environment), read with the
    # key in the same query at authentication, i.e. current as of this request.
    creator_roles: tuple[str | None, str | None] | None = field(default=None, repr=False)
    # Custom role name → its permissions, read in that same query (the creator's roles and
    # the key's own role), so custom roles need no second query either.
    known_roles: dict[str, frozenset[str]] = field(default_factory=dict, repr=False)
    _cache: dict[tuple[uuid.UUID, uuid.UUID | None], frozenset[str]] = field(
        default_factory=dict, repr=False
    )

    @classmethod
    def for_user(cls, user: User) -> Principal:
        return cls(kind="user", user=user, label=user.email)

    @classmethod
    def for_api_key(
        cls, key: ApiKey, creator_roles: tuple[str | None, str | None] | None = None,
        known_roles: dict[str, frozenset[str]] | None = None,
    ) -> Principal:
        return cls(kind="api_key", api_key=key, label=key.display, creator_roles=creator_roles,
                   known_roles=dict(known_roles or {}))

    @classmethod
    def for_run(cls, run_id: uuid.UUID, agent_name: str = "") -> Principal:
        """A run acting in the worker (reveals, tool calls). It holds no permissions: what
        it may do was decided when the run was started and when its version was published."""
        label = f"run {run_id}" + (f" of {agent_name}" if agent_name else "")
        return cls(kind="run", run_id=run_id, label=label)

    @classmethod
    def system(cls, label: str = "system") -> Principal:
        return cls(kind="system", label=label)

    @property
    def actor_id(self) -> str | None:
        if self.user is not None:
            return str(self.user.pk)
        if self.api_key is not None:
            return str(self.api_key.pk)
        if self.run_id is not None:
            return str(self.run_id)
        return None


def _role_permissions(
    org_id: uuid.UUID, role: str, known: dict[str, frozenset[str]] | None = None
) -> frozenset[str]:
    """Built-in roles from code (no query); custom roles as read with the key at
    authentication when available, else from the database now."""
    if role in ROLES:
        return ROLES[role]
    if known is not None and role in known:
        return known[role]
    return roles.permissions_of(org_id, role)


def _permissions_of_roles(
    org_id: uuid.UUID, role: str | None, narrowed: str | None,
    known: dict[str, frozenset[str]] | None = None,
) -> frozenset[str]:
    if role is None:
        return frozenset()
    perms = _role_permissions(org_id, role, known)
    return perms & _role_permissions(org_id, narrowed, known) if narrowed is not None else perms


def _member_permissions(
    user_id: uuid.UUID, org_id: uuid.UUID, env_id: uuid.UUID | None
) -> frozenset[str]:
    from tenants.models import EnvironmentRole, Membership

    membership = (
        Membership.objects.filter(organization_id=org_id, user_id=user_id, user__is_active=True)
        .only("id", "role")
        .first()
    )
    if membership is None:
        return frozenset()
    narrowed = None
    if env_id is not None:
        narrowed = (
            EnvironmentRole.objects.filter(membership=membership, environment_id=env_id)
            .values_list("role", flat=True)
            .first()
        )
    return _permissions_of_roles(org_id, membership.role, narrowed)


def effective_permissions(
    principal: Principal, org: Organization | uuid.UUID, environment: Environment | None = None
) -> frozenset[str]:
    org_id = org if isinstance(org, uuid.UUID) else org.pk
    env_id = environment.pk if environment is not None else None
    cache_key = (org_id, env_id)
    if cache_key in principal._cache:
        return principal._cache[cache_key]

    perms: frozenset[str]
    if principal.kind == "system":
        from tenants.permissions import PERMISSIONS

        perms = frozenset(PERMISSIONS)
    elif principal.kind == "user" and principal.user is not None:
        perms = _member_permissions(principal.user.pk, org_id, env_id)
    elif principal.kind == "api_key" and principal.api_key is not None:
        key = principal.api_key
        other_env = (
            key.environment_id is not None and env_id is not None and key.environment_id != env_id
        )
        if key.organization_id != org_id or not key.is_usable() or other_env:
            perms = frozenset()
        else:
            perms = frozenset(key.scopes)
            if key.role and key.role not in ROLES:
                # A custom role's key holds what the role holds now, not at creation.
                perms = _role_permissions(org_id, key.role, principal.known_roles)
            if key.environment_id is not None:
                perms &= BOUND_KEY_PERMISSIONS
            if key.creator_kind == "user" and key.created_by_id is None:
                perms = frozenset()  # the creating account is gone: so is the key's power
            elif key.created_by_id is not None:
                # Never wider than the creator's permissions now, not at creation time.
                creator_roles = principal.creator_roles
                if creator_roles is not None and env_id in (None, key.environment_id):
                    perms &= _permissions_of_roles(org_id, *creator_roles,
                                                   principal.known_roles)
                else:
                    perms &= _member_permissions(
                        key.created_by_id, org_id, env_id or key.environment_id
                    )
    else:
        perms = frozenset()
    principal._cache[cache_key] = perms
    return perms


def has_permission(
    principal: Principal,
    permission: str,
    org: Organization | uuid.UUID,
    environment: Environment | None = None,
) -> bool:
    check_permission_name(permission)
    return permission in effective_permissions(principal, org, environment)


@dataclass(frozen=True)
class Narrowing:
    """Why a member lacks, in one environment, a permission their org role grants."""

    environment: Environment
    role: str  # the narrower role that applies in `environment`


def narrowing_refusal(
    principal: Principal,
    permission: str,
    org: Organization | uuid.UUID,
    environment: Environment | None,
) -> Narrowing | None:
    """The member's narrowing in `environment` when it, not their org role, is why they lack
    `permission` there; None when allowed or when the org role lacks it anyway.

    Only the principal's own membership of `org` and an environment of `org` are read, so an
    explanation never shows anything of another organization. API keys get none: a key's
    environment binding and scopes are reasons of their own.
    """
    if environment is None or principal.kind != "user" or principal.user is None:
        return None
    org_id = org if isinstance(org, uuid.UUID) else org.pk
    if environment.organization_id != org_id:
        return None
    if has_permission(principal, permission, org, environment) or not has_permission(
        principal, permission, org
    ):
        return None
    from tenants.models import EnvironmentRole

    role = (
        EnvironmentRole.objects.filter(membership__organization_id=org_id,
                                       membership__user_id=principal.user.pk,
                                       environment_id=environment.pk)
        .values_list("role", flat=True)
        .first()
    )
    return Narrowing(environment, role) if role is not None else None


def authorize(
    principal: Principal,
    permission: str,
    org: Organization | uuid.UUID,
    environment: Environment | None = None,
) -> None:
    if not has_permission(principal, permission, org, environment):
        # The refusal path only: one more query to say *where* a narrowing is the cause.
        narrowing = narrowing_refusal(principal, permission, org, environment)
        if narrowing is not None:
            raise AccessDenied(permission, (
                f"You need the '{permission}' permission in {narrowing.environment.slug}, "
                f"where your role is narrowed to {narrowing.role}."))
        raise AccessDenied(permission)
