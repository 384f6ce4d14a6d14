from __future__ import annotations

from typing import Any

from django.http import HttpRequest


def console(request: HttpRequest) -> dict[str, Any]:
    """Org switcher data for every console page."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    from tenants.platform import orgs_for_user

    return {"user_orgs": orgs_for_user(user.pk), "current_org": getattr(request, "org", None)}
