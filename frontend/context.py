from __future__ import annotations

from typing import Any

from django.http import HttpRequest


def console(request: HttpRequest) -> dict[str, Any]:
    """Org switcher and navigation data for every console page.

    `org_view` has already resolved these for org pages; other pages (the org picker, account
    pages) look the user's orgs up here.
    """
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    user_orgs = getattr(request, "user_orgs", None)
    if user_orgs is None:
        from tenants.platform import orgs_for_user

        user_orgs = orgs_for_user(user.pk)
    return {
        "user_orgs": user_orgs,
        "current_org": getattr(request, "org", None),
        "current_role": getattr(request, "role", None),
        "console_nav": getattr(request, "console_nav", []),
    }
