"""Writes for organizations, environments, members and API keys.

Each function checks permission with `authorize`, writes, and records its audit event in the
same transaction (STYLE.md §1). Views, the CLI and tasks call these; nothing else saves
tenant models.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from audit import services as audit
from station.core.errors import AccessDenied, Conflict, InvalidInput, NotFound
from tenants import apikeys, platform, roles
from tenants.authz import Principal, authorize, effective_permissions
from tenants.context import org_scope
from tenants.models import (
    DEFAULT_ENVIRONMENTS,
    ApiKey,
    CustomRole,
    Environment,
    EnvironmentRole,
    Membership,
    Organization,
    User,
    slug_validator,
)
from tenants.permissions import OWNER_ROLE, PERMISSIONS


def _validate_slug(field: str, slug: str) -> str:
    try:
        slug_validator(slug)
    except ValidationError as exc:
        raise InvalidInput.field(field, str(exc.messages[0])) from exc
    return slug


def _validate_name(field: str, name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise InvalidInput.field(field, "This field may not be blank.")
    if len(name) > 200:
        raise InvalidInput.field(field, "Use at most 200 characters.")
    return name


def _validate_role(org: Organization | uuid.UUID, role: str, field: str = "role") -> str:
    """A built-in role or one of this org's custom roles (tenants.roles)."""
    return roles.validate_role(org, role, field, lock=True)


def role_permissions(org: Organization | uuid.UUID, role: str | None) -> frozenset[str]:
    return roles.permissions_of(org, role)


def _ensure_can_grant(
    actor: Principal,
    org: Organization,
    permissions: frozenset[str],
    environment: Environment | None = None,
) -> None:
    """No privilege escalation: nobody hands out permissions they do not hold themselves."""
    missing = sorted(permissions - effective_permissions(actor, org, environment))
    if missing:
        raise AccessDenied(
            missing[0], f"You cannot grant permissions you do not hold: {', '.join(missing)}."
        )


# --- organizations ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CreatedOrganization:
    organization: Organization
    owner: User
    owner_password: str | None  # set only when a new owner account was created


def create_organization(
    *, actor: Principal, slug: str, name: str, owner_email: str
) -> CreatedOrganization:
    """Platform operation: a new org with dev/staging/prod and its first owner."""
    if actor.kind != "system":
        raise AccessDenied("platform", "Only the platform operator creates organizations.")
    _validate_slug("slug", slug)
    name = _validate_name("name", name)
    if platform.org_by_slug(slug) is not None:
        raise Conflict(f"An organization with slug {slug!r} already exists.",
                       errors={"slug": ["This slug is taken."]})
    org_id = uuid.uuid4()
    try:
        with org_scope(org_id):
            org = Organization.objects.create(id=org_id, slug=slug, name=name)
            for env_slug, env_name in DEFAULT_ENVIRONMENTS:
                Environment.objects.create(slug=env_slug, name=env_name)
            owner, password = _get_or_create_user(owner_email)
            Membership.objects.create(user=owner, role=OWNER_ROLE)
            audit.record(
                "organization.created", actor=actor, target=org,
                changes={"slug": slug, "name": name, "owner": owner.email,
                         "environments": [e for e, _ in DEFAULT_ENVIRONMENTS]},
            )
    except IntegrityError as exc:
        raise Conflict(f"An organization with slug {slug!r} already exists.",
                       errors={"slug": ["This slug is taken."]}) from exc
    return CreatedOrganization(org, owner, password)


@transaction.atomic
def update_organization(*, actor: Principal, org: Organization, name: str) -> Organization:
    authorize(actor, "org.manage", org)
    name = _validate_name("name", name)
    before = org.name
    if before == name:
        return org
    org.name = name
    org.save(update_fields=["name"])
    audit.record("organization.updated", actor=actor, target=org,
                 changes={"name": audit.change(before, name)})
    return org


# --- environments -----------------------------------------------------------------------------


@transaction.atomic
def create_environment(*, actor: Principal, org: Organization, slug: str, name: str) -> Environment:
    authorize(actor, "environments.write", org)
    _validate_slug("slug", slug)
    name = _validate_name("name", name)
    if Environment.objects.filter(slug=slug).exists():
        raise Conflict(f"An environment with slug {slug!r} already exists.",
                       errors={"slug": ["This slug is taken in this organization."]})
    env = Environment.objects.create(slug=slug, name=name)
    audit.record("environment.created", actor=actor, target=env, environment_id=env.pk,
                 changes={"slug": slug, "name": name})
    return env


@transaction.atomic
def update_environment(*, actor: Principal, environment: Environment, name: str) -> Environment:
    authorize(actor, "environments.write", environment.organization_id, environment)
    name = _validate_name("name", name)
    before = environment.name
    if before != name:
        environment.name = name
        environment.save(update_fields=["name"])
        audit.record("environment.updated", actor=actor, target=environment,
                     environment_id=environment.pk, changes={"name": audit.change(before, name)})
    return environment


@transaction.atomic
def delete_environment(*, actor: Principal, environment: Environment) -> None:
    authorize(actor, "environments.delete", environment.organization_id, environment)
    if Environment.objects.count() <= 1:
        raise Conflict("An organization keeps at least one environment.")
    snapshot = {"slug": environment.slug, "name": environment.name}
    audit.record("environment.deleted", actor=actor, target=environment,
                 environment_id=environment.pk, changes=snapshot)
    # Keys bound to the environment go with it; each deletion is on the record too.
    for key in ApiKey.objects.filter(environment=environment):
        audit.record("apikey.deleted", actor=actor, target=key, target_label=key.display,
                     environment_id=environment.pk,
                     changes={"name": key.name, "reason": "environment deleted"})
    environment.delete()


# --- members ----------------------------------------------------------------------------------


def _get_or_create_user(email: str) -> tuple[User, str | None]:
    email = (email or "").strip().lower()
    try:
        User._meta.get_field("email").run_validators(email)
        if not email:
            raise ValidationError("An email address is required.")
    except ValidationError as exc:
        raise InvalidInput.field("email", exc.messages[0]) from exc
    user = User.objects.filter(email=email).first()
    if user is not None:
        return user, None
    password = secrets.token_urlsafe(12)
    return User.objects.create_user(email=email, password=password), password


def _lock_owners() -> int:
    """Lock the owner rows and count the owners who can still act (active accounts)."""
    owners = Membership.objects.select_for_update(of=("self",)).filter(role=OWNER_ROLE)
    return sum(1 for m in owners.select_related("user") if m.user.is_active)


@transaction.atomic
def invite_member(*, actor: Principal, org: Organization, email: str, role: str) -> Membership:
    authorize(actor, "members.manage", org)
    _validate_role(org, role)
    _ensure_can_grant(actor, org, role_permissions(org, role))
    user, _ = _get_or_create_user(email)
    if Membership.objects.filter(user=user).exists():
        raise Conflict(f"{user.email} is already a member.",
                       errors={"email": ["Already a member of this organization."]})
    membership = Membership.objects.create(user=user, role=role)
    audit.record("member.invited", actor=actor, target=membership, target_label=user.email,
                 changes={"email": user.email, "role": role})
    transaction.on_commit(lambda: _send_invitation(user.email, org.name))
    return membership


def _send_invitation(email: str, org_name: str) -> None:
    from django.conf import settings
    from django.core.mail import send_mail

    send_mail(
        subject=f"You have been invited to {org_name} on Station",
        message=(
            f"You now have access to {org_name}. Set your password at "
            f"{settings.PUBLIC_URL}/accounts/password/reset/ and sign in with {email}."
        ),
        from_email=None,
        recipient_list=[email],
        fail_silently=True,
    )


@transaction.atomic
def change_member_role(*, actor: Principal, membership: Membership, role: str) -> Membership:
    org_id = membership.organization_id
    authorize(actor, "members.manage", org_id)
    _validate_role(org_id, role)
    before = membership.role
    if before == role:
        return membership
    org = membership.organization
    # Both the role given and the role taken away must be within the actor's own powers.
    _ensure_can_grant(actor, org, role_permissions(org, role) | role_permissions(org, before))
    if before == OWNER_ROLE and _lock_owners() <= 1:
        raise Conflict("The last owner cannot be demoted; make someone else owner first.",
                       errors={"role": ["This member is the organization's last owner."]})
    membership.role = role
    membership.save(update_fields=["role"])
    audit.record("member.role_changed", actor=actor, target=membership,
                 target_label=membership.user.email, changes={"role": audit.change(before, role)})
    return membership


@transaction.atomic
def set_environment_role(
    *, actor: Principal, membership: Membership, environment: Environment, role: str | None
) -> Membership:
    """Narrow a member's permissions in one environment (role=None removes the narrowing)."""
    org = membership.organization
    # Judged with the actor's permissions *in that environment*: someone narrowed there
    # cannot lift narrowings there, their own or anyone else's.
    authorize(actor, "members.manage", org, environment)
    if actor.user is not None and membership.user_id == actor.user.pk:
        raise AccessDenied("members.manage", "You cannot change your own environment role.")
    if role is not None:
        _validate_role(org, role)
    # Narrowing takes permissions away: like a role change, only within the actor's own.
    _ensure_can_grant(actor, org, role_permissions(org, membership.role), environment)
    existing = (
        EnvironmentRole.objects.filter(membership=membership, environment=environment).first()
    )
    before = existing.role if existing else None
    if before == role:
        return membership
    if role is None and existing is not None:
        existing.delete()
    elif existing is not None and role is not None:
        existing.role = role
        existing.save(update_fields=["role"])
    elif role is not None:
        EnvironmentRole.objects.create(membership=membership, environment=environment, role=role)
    audit.record("member.environment_role_set", actor=actor, target=membership,
                 target_label=membership.user.email, environment_id=environment.pk,
                 changes={"environment": environment.slug, "role": audit.change(before, role)})
    return membership


@transaction.atomic
def remove_member(*, actor: Principal, membership: Membership) -> None:
    org = membership.organization
    authorize(actor, "members.manage", org)
    _ensure_can_grant(actor, org, role_permissions(org, membership.role))
    if membership.role == OWNER_ROLE and _lock_owners() <= 1:
        raise Conflict("The last owner cannot be removed; make someone else owner first.")
    audit.record("member.removed", actor=actor, target=membership,
                 target_label=membership.user.email,
                 changes={"email": membership.user.email, "role": membership.role})
    membership.delete()


# --- custom roles -----------------------------------------------------------------------------


def _validate_permissions(permissions: object) -> list[str]:
    if not isinstance(permissions, list | tuple | set | frozenset) or not all(
        isinstance(p, str) for p in permissions
    ):
        raise InvalidInput.field("permissions", "Give a list of permission names.")
    unknown = sorted(set(permissions) - set(PERMISSIONS))
    if unknown:
        raise InvalidInput.field("permissions", f"Unknown permissions: {', '.join(unknown)}.")
    if not permissions:
        raise InvalidInput.field("permissions", "A role needs at least one permission.")
    return sorted(set(permissions))


def _validate_description(description: str) -> str:
    description = (description or "").strip()
    if len(description) > 500:
        raise InvalidInput.field("description", "Use at most 500 characters.")
    return description


def _editable_role(name: str) -> CustomRole:
    """The org's custom role `name`; built-in roles are read-only (409), others 404."""
    if roles.is_built_in(name):
        raise Conflict(f"The built-in role {name!r} is read-only; create a custom role instead.")
    role = CustomRole.objects.select_for_update().filter(name=name).first()
    if role is None:
        raise NotFound("No such role in this organization.")
    return role


@transaction.atomic
def create_custom_role(
    *, actor: Principal, org: Organization, name: str, permissions: list[str],
    description: str = "",
) -> CustomRole:
    authorize(actor, "roles.manage", org)
    name = (name or "").strip()
    _validate_slug("name", name)
    if roles.is_built_in(name):
        raise InvalidInput.field("name", f"{name!r} is a built-in role; choose another name.")
    perms = _validate_permissions(permissions)
    description = _validate_description(description)
    # Defining a role is granting it: only permissions the actor holds.
    _ensure_can_grant(actor, org, frozenset(perms))
    if CustomRole.objects.filter(name=name).exists():
        raise Conflict(f"A role named {name!r} already exists.",
                       errors={"name": ["This name is taken in this organization."]})
    role = CustomRole.objects.create(name=name, description=description, permissions=perms)
    audit.record("role.created", actor=actor, target=role,
                 changes={"name": name, "description": description, "permissions": perms})
    return role


@transaction.atomic
def update_custom_role(
    *, actor: Principal, org: Organization, name: str, permissions: list[str] | None = None,
    description: str | None = None,
) -> CustomRole:
    """Change a custom role's permissions and/or description. Everyone holding the role, and
    keys made by or with it, hold the new set from their next request."""
    authorize(actor, "roles.manage", org)
    role = _editable_role(name)
    changes: dict[str, object] = {}
    before_perms = sorted(roles.clean_stored(role.permissions))
    if permissions is not None:
        perms = _validate_permissions(permissions)
        if perms != before_perms:
            # Both what is added and what is taken away must be within the actor's powers.
            _ensure_can_grant(actor, org, frozenset(perms) | frozenset(before_perms))
            changes["permissions"] = {
                "added": sorted(set(perms) - set(before_perms)),
                "removed": sorted(set(before_perms) - set(perms)),
            }
            role.permissions = perms
    if description is not None:
        description = _validate_description(description)
        if description != role.description:
            changes["description"] = audit.change(role.description, description)
            role.description = description
    if not changes:
        return role
    role.updated_at = timezone.now()
    role.save(update_fields=["permissions", "description", "updated_at"])
    audit.record("role.updated", actor=actor, target=role, changes=changes)
    return role


def role_assignments(name: str) -> dict[str, int]:
    """Where the current org still uses a role name, by kind (zero counts left out)."""
    from station.identity.models import GroupRoleMapping, OidcConnection, SamlConnection

    now = timezone.now()
    counts = {
        "members": Membership.objects.filter(role=name).count(),
        "environment roles": EnvironmentRole.objects.filter(role=name).count(),
        "API keys": ApiKey.objects.filter(role=name, revoked_at__isnull=True)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now)).count(),
        "IdP group mappings": GroupRoleMapping.objects.filter(role=name).count(),
        "SSO default roles": SamlConnection.objects.filter(default_role=name).count()
        + OidcConnection.objects.filter(default_role=name).count(),
    }
    return {kind: n for kind, n in counts.items() if n}


@transaction.atomic
def delete_custom_role(*, actor: Principal, org: Organization, name: str) -> None:
    authorize(actor, "roles.manage", org)
    role = _editable_role(name)
    _ensure_can_grant(actor, org, roles.clean_stored(role.permissions))
    # Assigning services lock the role row too (roles.validate_role(lock=True)), so an
    # assignment racing this deletion is either counted here or refused there.
    in_use = role_assignments(name)
    if in_use:
        listed = ", ".join(f"{n} {kind}" for kind, n in in_use.items())
        raise Conflict(f"The role {name!r} is still assigned ({listed}); reassign them first.",
                       errors={"name": [f"Still assigned: {listed}."]})
    audit.record("role.deleted", actor=actor, target=role,
                 changes={"name": role.name, "description": role.description,
                          "permissions": sorted(roles.clean_stored(role.permissions))})
    role.delete()


# --- API keys ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CreatedApiKey:
    api_key: ApiKey
    plaintext: str  # shown once, never stored


def _resolve_scopes(
    org: Organization, scopes: list[str] | None, role: str | None
) -> frozenset[str]:
    if scopes is None and role is None:
        raise InvalidInput.field("scopes", "Give either scopes or a role.")
    if scopes is not None and role is not None:
        raise InvalidInput.field("scopes", "Give either scopes or a role, not both.")
    if role is not None:
        return role_permissions(org, _validate_role(org, role))
    assert scopes is not None
    unknown = sorted(set(scopes) - set(PERMISSIONS))
    if unknown:
        raise InvalidInput.field("scopes", f"Unknown permissions: {', '.join(unknown)}.")
    if not scopes:
        raise InvalidInput.field("scopes", "A key needs at least one permission.")
    return frozenset(scopes)


@transaction.atomic
def create_api_key(
    *,
    actor: Principal,
    org: Organization,
    name: str,
    scopes: list[str] | None = None,
    role: str | None = None,
    environment: Environment | None = None,
    expires_at: datetime | None = None,
) -> CreatedApiKey:
    authorize(actor, "apikeys.manage", org)
    name = _validate_name("name", name)
    wanted = _resolve_scopes(org, scopes, role)
    if actor.kind != "system":
        _ensure_can_grant(actor, org, wanted)
    if expires_at is not None and expires_at <= timezone.now():
        raise InvalidInput.field("expires_at", "Must be in the future.")
    parent = actor.api_key
    if parent is not None and parent.expires_at is not None:
        # A key cannot outlive the key that made it (nor, by cascade, its revocation).
        if expires_at is None:
            expires_at = parent.expires_at
        elif expires_at > parent.expires_at:
            raise InvalidInput.field(
                "expires_at",
                f"Cannot be later than the expiry of the key making it ({parent.expires_at}).")
    creator = actor.user or (parent.created_by if parent else None)
    creator_kind = "system" if actor.kind == "system" or (
        parent is not None and parent.creator_kind == "system") else "user"
    generated = apikeys.generate()
    key = ApiKey.objects.create(
        name=name,
        key_id=generated.key_id,
        secret_hash=apikeys.hash_secret(generated.secret),
        last_four=generated.last_four,
        scopes=sorted(wanted),
        role=role or "",
        environment=environment,
        created_by=creator,
        creator_kind=creator_kind,
        parent=parent,
        expires_at=expires_at,
    )
    audit.record("apikey.created", actor=actor, target=key, target_label=key.display,
                 environment_id=environment.pk if environment else None,
                 changes={"name": name, "scopes": sorted(wanted),
                          **({"role": role} if role else {}),
                          "environment": environment.slug if environment else None,
                          "expires_at": expires_at})
    return CreatedApiKey(key, generated.plaintext)


@transaction.atomic
def revoke_api_key(*, actor: Principal, api_key: ApiKey) -> ApiKey:
    authorize(actor, "apikeys.manage", api_key.organization_id)
    if api_key.revoked_at is not None:
        return api_key
    now = timezone.now()
    api_key.revoked_at = now
    api_key.save(update_fields=["revoked_at"])
    audit.record("apikey.revoked", actor=actor, target=api_key, target_label=api_key.display)
    # Keys made by this key go with it, so a leaked key cannot leave heirs behind.
    pending = [api_key.pk]
    while pending:
        children = list(ApiKey.objects.filter(parent_id__in=pending, revoked_at__isnull=True))
        for child in children:
            child.revoked_at = now
            child.save(update_fields=["revoked_at"])
            audit.record("apikey.revoked", actor=actor, target=child, target_label=child.display,
                         changes={"reason": f"parent key {api_key.display} revoked"})
        pending = [child.pk for child in children]
    return api_key


def touch_api_key(key: ApiKey, *, resolution: timedelta) -> None:
    """Record use, at most once per `resolution` (telemetry, not audited).

    Written after the request commits, in its own short transaction and only if the stored
    value is still older than `resolution`, so it never holds the key's row lock for the
    length of a request and concurrent requests do not queue behind each other.
    """
    now = timezone.now()
    if key.last_used_at is not None and now - key.last_used_at < resolution:
        return
    key.last_used_at = now
    key_pk, org_id = key.pk, key.organization_id

    def _write() -> None:
        with org_scope(org_id):
            stale = Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - resolution)
            ApiKey.objects.filter(stale, pk=key_pk).update(last_used_at=now)

    transaction.on_commit(_write)
