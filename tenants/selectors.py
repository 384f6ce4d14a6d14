"""Reads that are more than a one-line filter."""

from __future__ import annotations

from tenants.models import ApiKey


def api_key_for_authentication(key_id: str) -> ApiKey | None:
    """The key (in the current org scope) with its org, environment and creator."""
    return (
        ApiKey.objects.select_related("organization", "environment", "created_by")
        .filter(key_id=key_id)
        .first()
    )
