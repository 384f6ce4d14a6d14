"""The only module that reaches across organizations, each path narrow and named.

Row-level security still applies: these helpers set a transaction-local lookup key
(`app.org_slug`, `app.user_id`, `app.api_key_id`) that one extra SELECT policy honours
(see migration 0002), read, and clear the key again before returning.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.db import connection, transaction

from tenants.context import no_org_scope


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


def org_id_for_api_key(key_id: str) -> uuid.UUID | None:
    from tenants.models import ApiKey

    with _lookup("app.api_key_id", key_id):
        rows = ApiKey.all_orgs.filter(key_id=key_id).values_list("organization_id", flat=True)
        return rows.first()


def all_org_ids() -> list[uuid.UUID]:
    """Every organization id, for operator-wide jobs (`station audit verify`).

    Only the owner role's connection (`STATION_DB_ROLE=owner`) sees them, through a SELECT
    policy granted to that role alone; the app role gets an empty list.
    """
    from tenants.models import Organization

    with transaction.atomic(), no_org_scope():
        return list(Organization.objects.order_by("created_at").values_list("id", flat=True))
