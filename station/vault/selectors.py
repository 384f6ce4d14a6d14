"""Vault reads shared by the API and the console (never values)."""

from __future__ import annotations

import uuid

from django.db.models import OuterRef, QuerySet, Subquery

from station.vault.models import Secret, SecretVersion
from tenants.authz import Principal, has_permission
from tenants.models import Environment


def visible_environments(principal: Principal, org_id: uuid.UUID, area: str) -> list[Environment]:
    """Environments in which the principal holds any permission of `area` ("secrets",
    "variables"): an environment-bound key sees its own; a member narrowed, in one
    environment, to a role without the area's permissions does not see that environment."""
    perms = (f"{area}.read", f"{area}.write")
    return [env for env in Environment.objects.order_by("created_at")
            if any(has_permission(principal, p, org_id, env) for p in perms)]


def secrets_with_fingerprints() -> QuerySet[Secret]:
    """Secrets (in the current org scope) annotated with their current version's
    `fingerprint`."""
    current = SecretVersion.objects.filter(
        secret=OuterRef("pk"), version=OuterRef("current_version")).values("fingerprint")[:1]
    return Secret.objects.select_related("environment").annotate(fingerprint=Subquery(current))
