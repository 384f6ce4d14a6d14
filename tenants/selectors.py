"""Reads that are more than a one-line filter."""

from __future__ import annotations

from django.db.models import OuterRef, Subquery

from tenants.models import ApiKey, EnvironmentRole, Membership


def api_key_for_authentication(key_id: str) -> ApiKey | None:
    """The key with its org, environment and creator, plus the creator's current roles.

    `creator_role` (org role, None if no longer an active member) and `creator_env_role`
    (narrowing in the key's environment) let `authorize` bound the key by its creator's
    permissions without another query per request.
    """
    creator = Membership.objects.filter(
        organization_id=OuterRef("organization_id"),
        user_id=OuterRef("created_by_id"),
        user__is_active=True,
    )
    creator_env = EnvironmentRole.objects.filter(
        membership__organization_id=OuterRef("organization_id"),
        membership__user_id=OuterRef("created_by_id"),
        environment_id=OuterRef("environment_id"),
    )
    return (
        ApiKey.objects.select_related("organization", "environment", "created_by")
        .annotate(
            creator_role=Subquery(creator.values("role")[:1]),
            creator_env_role=Subquery(creator_env.values("role")[:1]),
        )
        .filter(key_id=key_id)
        .first()
    )
