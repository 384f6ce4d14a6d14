"""The only module that reaches across organizations, each path narrow and named.

Row-level security still applies: these helpers set a transaction-local lookup key
(`app.org_slug`, `app.user_id`, `app.api_key_id`) that one extra SELECT policy honours
(see migration 0002), read, and clear the key again before returning.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.db import connection, transaction

from tenants.context import no_org_scope
from tenants.roles import clean_stored

if TYPE_CHECKING:
    from tenants.models import ApiKey


@contextmanager
def _lookup(setting: str, value: str) -> Iterator[None]:
    with transaction.atomic(), no_org_scope(), connection.cursor() as cursor:
        cursor.execute("SELECT set_config(%s, %s, true)", [setting, value])
        try:
            yield
        finally:
            cursor.execute("SELECT set_config(%s, '', true)", [setting])


@dataclass(frozen=True)
class OrgSummary:
    id: uuid.UUID
    slug: str
    name: str
    role: str | None = None


def org_by_slug(slug: str) -> OrgSummary | None:
    from tenants.models import Organization

    with _lookup("app.org_slug", slug):
        row = Organization.objects.filter(slug=slug).values_list("id", "slug", "name").first()
    return OrgSummary(*row) if row else None


def orgs_for_user(user_id: uuid.UUID | str) -> list[OrgSummary]:
    """The organizations a user belongs to, with the user's role in each (org switcher)."""
    from tenants.models import Membership

    with _lookup("app.user_id", str(user_id)):
        rows = list(
            Membership.all_orgs.filter(user_id=user_id)
            .order_by("organization__name")
            .values_list("organization_id", "organization__slug", "organization__name", "role")
        )
    return [OrgSummary(*row) for row in rows]


@dataclass(frozen=True)
class AuthenticatedKey:
    key: ApiKey
    creator_role: str | None  # the creator's org role now (None unless an active member)
    creator_env_role: str | None  # the creator's role in the key's environment, if narrowed
    # Custom role name → permissions, for whichever of the creator's roles and the key's own
    # role are custom roles of the org (built-in roles are resolved in code).
    custom_roles: dict[str, frozenset[str]] = field(default_factory=dict)


def enter_org_of_api_key(key_id: str) -> AuthenticatedKey | None:
    """Find an API key by id, scope the current transaction to its org, and return it.

    One database round trip (migration 0005): the lookup, `set_config('app.org_id')` and the
    key row with its creator's current roles come from one function call, and the org
    context follows. Returns None (leaving no org set) for an unknown key id. The caller
    still checks the secret. Must run inside a transaction, as every request does.
    """
    from tenants import context
    from tenants.models import ApiKey

    if not connection.in_atomic_block:
        raise RuntimeError("enter_org_of_api_key() must run inside a transaction.")
    with no_org_scope(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT (r.api_key).*, r.creator_role, r.creator_env_role, "
            "r.creator_role_permissions, r.creator_env_role_permissions, r.key_role_permissions "
            "FROM station_enter_org_of_api_key(%s) r",
            [key_id],
        )
        row = cursor.fetchone()
        names = [column.name for column in cursor.description or ()]
    if row is None:
        return None
    by_column = dict(zip(names, row, strict=True))
    fields = ApiKey._meta.concrete_fields
    values = [
        f.from_db_value(by_column[f.column], None, connection)
        if hasattr(f, "from_db_value") else by_column[f.column]
        for f in fields
    ]
    key = ApiKey.from_db(connection.alias, [f.attname for f in fields], values)
    context.activate_in_database(key.organization_id)
    custom_roles = {
        name: clean_stored(_json(perms))
        for name, perms in (
            (by_column["creator_role"], by_column["creator_role_permissions"]),
            (by_column["creator_env_role"], by_column["creator_env_role_permissions"]),
            (key.role, by_column["key_role_permissions"]),
        )
        if name and perms is not None
    }
    return AuthenticatedKey(key, by_column["creator_role"], by_column["creator_env_role"],
                            custom_roles)


def _json(value: object) -> object:
    # psycopg decodes jsonb already; a driver handing back text is decoded here.
    return json.loads(value) if isinstance(value, str | bytes) else value


def all_org_ids() -> list[uuid.UUID]:
    """Every organization id, for operator-wide jobs (`station audit verify`).

    Only the owner role's connection (`STATION_DB_ROLE=owner`) sees them, through a SELECT
    policy granted to that role alone; the app role gets an empty list.
    """
    from tenants.models import Organization

    with transaction.atomic(), no_org_scope():
        return list(Organization.objects.order_by("created_at").values_list("id", flat=True))


def enter_org_of_inbound_webhook(webhook_id: uuid.UUID) -> uuid.UUID | None:
    """Find the org of an inbound webhook id and scope the current transaction to it.

    The public `POST /hooks/<id>` endpoint has no API key: the webhook id is its only handle.
    One SQL function call (migration triggers/0002) reads that single row through a narrow
    policy on a transaction-local `app.inbound_webhook_id`, clears it, and sets `app.org_id`.
    Returns None (no org set) for an unknown id. The caller still checks the signature.
    """
    from tenants import context

    if not connection.in_atomic_block:
        raise RuntimeError("enter_org_of_inbound_webhook() must run inside a transaction.")
    with no_org_scope(), connection.cursor() as cursor:
        cursor.execute("SELECT station_enter_org_of_inbound_webhook(%s)", [str(webhook_id)])
        row = cursor.fetchone()
    org_id = row[0] if row else None
    if org_id is None:
        return None
    context.activate_in_database(org_id)
    return uuid.UUID(str(org_id))


def org_of_verified_domain(domain: str) -> uuid.UUID | None:
    """The org that verified an email domain, if any (login routing; refusing a domain that
    another org already verified). Opens only verified rows, by policy (identity/0002)."""
    from station.identity.models import VerifiedDomain

    domain = domain.strip().rstrip(".").lower()
    if not domain:
        return None
    with _lookup("app.email_domain", domain):
        return (VerifiedDomain.all_orgs.filter(domain=domain, verified_at__isnull=False)
                .values_list("organization_id", flat=True).first())


def enter_org_of_scim_token(token_id: str) -> uuid.UUID | None:
    """Find the org of a SCIM bearer token id and scope the current transaction to it.

    A SCIM request names no org: the token is its only handle. One SQL function call
    (migration scim/0002) reads that single row through a narrow policy on a
    transaction-local `app.scim_token_id`, clears it, and sets `app.org_id`. Returns None (no
    org set) for an unknown id. The caller then reads the token in scope and checks the secret.
    """
    from tenants import context

    if not connection.in_atomic_block:
        raise RuntimeError("enter_org_of_scim_token() must run inside a transaction.")
    with no_org_scope(), connection.cursor() as cursor:
        cursor.execute("SELECT station_enter_org_of_scim_token(%s)", [token_id])
        row = cursor.fetchone()
    org_id = row[0] if row else None
    if org_id is None:
        return None
    context.activate_in_database(org_id)
    return uuid.UUID(str(org_id))
