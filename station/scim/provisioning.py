"""SCIM writes: users and groups of one org, each with its audit event (actor: the token).

A person may belong to several orgs; the global `User` row is created here only when the email
is new, and never modified afterwards: what the IdP says about a person lives on this org's
`ScimUser`. Deactivation and deletion end access at once (station.scim.access.cut_access).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields, replace
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit import services as audit
from station.scim.access import apply_access, cut_access
from station.scim.errors import ScimError, invalid_value
from station.scim.models import ScimGroup, ScimGroupMember, ScimUser
from tenants.authz import Principal, authorize
from tenants.context import require_org_id
from tenants.models import Membership, User


@dataclass(frozen=True)
class UserFields:
    """The User attributes Station keeps (everything else an IdP sends is accepted, not kept)."""

    user_name: str
    external_id: str = ""
    given_name: str = ""
    family_name: str = ""
    formatted_name: str = ""
    display_name: str = ""
    active: bool = True

    @classmethod
    def of(cls, scim_user: ScimUser) -> UserFields:
        return cls(user_name=scim_user.user.email, external_id=scim_user.external_id,
                   given_name=scim_user.given_name, family_name=scim_user.family_name,
                   formatted_name=scim_user.formatted_name,
                   display_name=scim_user.display_name, active=scim_user.active)


_STORED = ("external_id", "given_name", "family_name", "formatted_name", "display_name")
_LIMITS = {"external_id": 500, "given_name": 200, "family_name": 200, "formatted_name": 400,
           "display_name": 400}


def _clean(values: UserFields) -> UserFields:
    email = (values.user_name or "").strip().lower()
    if not email:
        raise invalid_value("userName is required.")
    try:
        validate_email(email)
    except ValidationError as exc:
        raise invalid_value("userName must be an email address: Station signs people in by "
                            "email.") from exc
    for name in _STORED:
        value = getattr(values, name)
        if not isinstance(value, str):
            raise invalid_value(f"{name} must be a string.")
        if len(value) > _LIMITS[name]:
            raise invalid_value(f"{name} is longer than {_LIMITS[name]} characters.")
    return replace(values, user_name=email)


def sync_members() -> None:
    """Give every member of the org a ScimUser, so the IdP can find (and match) people who
    were invited before SCIM. Bookkeeping only: nobody's access changes."""
    known = ScimUser.objects.values_list("user_id", flat=True)
    missing = Membership.objects.exclude(user_id__in=known).values_list("user_id", flat=True)
    org_id = require_org_id()
    ScimUser.objects.bulk_create(
        [ScimUser(organization_id=org_id, user_id=user_id) for user_id in missing],
        ignore_conflicts=True)


@transaction.atomic
def create_user(*, actor: Principal, values: UserFields) -> ScimUser:
    org_id = require_org_id()
    authorize(actor, "members.manage", org_id)
    values = _clean(values)
    sync_members()
    user = User.objects.filter(email=values.user_name).first()
    if user is not None and ScimUser.objects.filter(user=user).exists():
        raise ScimError(409, f"A user with userName {values.user_name} already exists.",
                        "uniqueness")
    user_created = user is None
    try:
        # A concurrent create of the same email loses on a unique index: a 409, not a 500.
        with transaction.atomic():
            if user is None:
                name = values.display_name or values.formatted_name or " ".join(
                    p for p in (values.given_name, values.family_name) if p)
                user = User.objects.create_user(email=values.user_name, name=name[:200])
            scim_user = ScimUser.objects.create(
                user=user, active=values.active, role_managed=True,
                **{name: getattr(values, name) for name in _STORED})
    except IntegrityError as exc:
        raise ScimError(409, f"A user with userName {values.user_name} already exists.",
                        "uniqueness") from exc
    access = apply_access(actor, scim_user)
    audit.record("scim.user_created", actor=actor, target=scim_user, target_label=user.email,
                 changes={"userName": user.email, "externalId": values.external_id,
                          "active": values.active, "account_created": user_created, **access})
    return scim_user


@transaction.atomic
def update_user(*, actor: Principal, scim_user: ScimUser, values: UserFields) -> ScimUser:
    authorize(actor, "members.manage", scim_user.organization_id)
    values = _clean(values)
    if values.user_name != scim_user.user.email:
        # The account is shared with every org the person belongs to: one org's IdP may not
        # rename it (that would also move who can sign in with the address).
        raise ScimError(400, "userName cannot be changed: provision the new address as a new "
                             "user.", "mutability")
    before = UserFields.of(scim_user)
    changes = {f.name: audit.change(getattr(before, f.name), getattr(values, f.name))
               for f in fields(UserFields)
               if f.name in _STORED and getattr(before, f.name) != getattr(values, f.name)}
    for name in changes:
        setattr(scim_user, name, getattr(values, name))
    activity = before.active != values.active
    if not changes and not activity:
        return scim_user
    scim_user.active = values.active
    scim_user.updated_at = timezone.now()
    scim_user.save()
    label = scim_user.user.email
    if changes:
        audit.record("scim.user_updated", actor=actor, target=scim_user, target_label=label,
                     changes=changes)
    if activity:
        access = apply_access(actor, scim_user)
        action = "scim.user_reactivated" if values.active else "scim.user_deactivated"
        audit.record(action, actor=actor, target=scim_user, target_label=label, changes=access)
    return scim_user


@transaction.atomic
def delete_user(*, actor: Principal, scim_user: ScimUser) -> None:
    authorize(actor, "members.manage", scim_user.organization_id)
    access = cut_access(actor, scim_user)
    audit.record("scim.user_deleted", actor=actor, target=scim_user,
                 target_label=scim_user.user.email,
                 changes={"userName": scim_user.user.email, **access})
    scim_user.delete()


# --- groups -----------------------------------------------------------------------------------


def _members(ids: list[str]) -> list[ScimUser]:
    """This org's users by SCIM id. An unknown id and another org's id read the same."""
    wanted: list[uuid.UUID] = []
    for raw in ids:
        try:
            wanted.append(uuid.UUID(str(raw)))
        except ValueError as exc:
            raise invalid_value(f"No user with id {raw}.") from exc
    found = {u.pk: u for u in ScimUser.objects.select_related("user").filter(pk__in=wanted)}
    for pk in wanted:
        if pk not in found:
            raise invalid_value(f"No user with id {pk}.")
    return [found[pk] for pk in dict.fromkeys(wanted)]


def _link(group: ScimGroup, scim_user: ScimUser) -> ScimGroupMember:
    return ScimGroupMember(organization_id=group.organization_id, group=group,
                           scim_user=scim_user)


def _clean_group_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise invalid_value("displayName is required.")
    if len(name) > 500:
        raise invalid_value("displayName is longer than 500 characters.")
    return name.strip()


def _refuse_taken(name: str, group: ScimGroup | None = None) -> None:
    taken = ScimGroup.objects.filter(display_name=name)
    if group is not None:
        taken = taken.exclude(pk=group.pk)
    if taken.exists():
        raise ScimError(409, f"A group named {name!r} already exists.", "uniqueness")


def _reevaluate(actor: Principal, users: list[ScimUser]) -> dict[str, Any]:
    effects: dict[str, Any] = {}
    for scim_user in users:
        scim_user.refresh_from_db()
        effect = apply_access(actor, scim_user)
        if effect:
            effects[scim_user.user.email] = effect
    return effects


@transaction.atomic
def create_group(*, actor: Principal, display_name: Any, external_id: str = "",
                 member_ids: list[str] | None = None) -> ScimGroup:
    authorize(actor, "members.manage", require_org_id())
    name = _clean_group_name(display_name)
    _refuse_taken(name)
    members = _members(member_ids or [])
    try:
        with transaction.atomic():
            group = ScimGroup.objects.create(display_name=name,
                                             external_id=str(external_id or "")[:500])
    except IntegrityError as exc:
        raise ScimError(409, f"A group named {name!r} already exists.", "uniqueness") from exc
    ScimGroupMember.objects.bulk_create([_link(group, u) for u in members])
    effects = _reevaluate(actor, members)
    audit.record("scim.group_created", actor=actor, target=group, target_label=name,
                 changes={"displayName": name, "members": [u.user.email for u in members],
                          "access": effects})
    return group


@transaction.atomic
def update_group(*, actor: Principal, group: ScimGroup, display_name: Any = None,
                 external_id: str | None = None, add: list[str] | None = None,
                 remove: list[str] | None = None, replace_members: list[str] | None = None,
                 ) -> ScimGroup:
    """Rename and/or change members; every affected member's role is re-evaluated."""
    authorize(actor, "members.manage", group.organization_id)
    changes: dict[str, Any] = {}
    current = {m.scim_user_id: m.scim_user for m in
               ScimGroupMember.objects.select_related("scim_user__user").filter(group=group)}
    affected: dict[uuid.UUID, ScimUser] = {}
    if display_name is not None:
        name = _clean_group_name(display_name)
        if name != group.display_name:
            _refuse_taken(name, group)
            changes["displayName"] = audit.change(group.display_name, name)
            group.display_name = name
            affected.update(current)  # the mapping is by name: everyone's role may change
    if external_id is not None and external_id != group.external_id:
        changes["externalId"] = audit.change(group.external_id, external_id)
        group.external_id = str(external_id)[:500]
    to_add: list[ScimUser] = []
    to_remove: list[ScimUser] = []
    if replace_members is not None:
        wanted = {u.pk: u for u in _members(replace_members)}
        to_add = [u for pk, u in wanted.items() if pk not in current]
        to_remove = [u for pk, u in current.items() if pk not in wanted]
    to_add += [u for u in _members(add or []) if u.pk not in current]
    to_remove += [u for u in _members(remove or []) if u.pk in current]
    if to_add:
        ScimGroupMember.objects.bulk_create([_link(group, u) for u in to_add],
                                            ignore_conflicts=True)
        changes["members_added"] = sorted({u.user.email for u in to_add})
    if to_remove:
        ScimGroupMember.objects.filter(group=group,
                                       scim_user__in=[u.pk for u in to_remove]).delete()
        changes["members_removed"] = sorted({u.user.email for u in to_remove})
    if not changes:
        return group
    group.updated_at = timezone.now()
    group.save()
    affected.update({u.pk: u for u in to_add + to_remove})
    effects = _reevaluate(actor, list(affected.values()))
    if effects:
        changes["access"] = effects
    audit.record("scim.group_updated", actor=actor, target=group,
                 target_label=group.display_name, changes=changes)
    return group


def reevaluate_group_by_name(*, actor: Principal, name: str) -> dict[str, Any]:
    """Re-apply the role of every SCIM user in the group called `name` (the mapping is by
    name): called by the identity app, inside its transaction, when that group's role
    mapping is set or deleted, so SCIM-managed roles follow the mapping at once instead of
    waiting for the IdP's next push. Returns the access changes by email (for the audit)."""
    members = [m.scim_user for m in ScimGroupMember.objects.select_related("scim_user__user")
               .filter(group__display_name=name)]
    return _reevaluate(actor, members)


@transaction.atomic
def delete_group(*, actor: Principal, group: ScimGroup) -> None:
    authorize(actor, "members.manage", group.organization_id)
    members = [m.scim_user for m in
               ScimGroupMember.objects.select_related("scim_user__user").filter(group=group)]
    name = group.display_name
    group_pk = group.pk
    group.delete()
    effects = _reevaluate(actor, members)
    group.pk = group_pk
    audit.record("scim.group_deleted", actor=actor, target=group, target_label=name,
                 changes={"displayName": name, "members": [u.user.email for u in members],
                          "access": effects})
