from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from tenants.authz import Principal, has_permission


class HasOrgPermission(BasePermission):
    """Looks up the view's `permission_map[action]` and asks `authorize` about it.

    A view without an entry for the action is refused: new endpoints fail closed.
    """

    message = "You do not have permission for this."

    def has_permission(self, request: Request, view: Any) -> bool:
        principal = request.auth
        if not isinstance(principal, Principal):
            return False
        method = (request.method or "").lower()
        action = getattr(view, "action", None) or method
        permission = getattr(view, "permission_map", {}).get(action)
        if permission is None:
            # No handler at all for this method: nothing to guard, let DRF answer 405.
            # A handler without a permission_map entry is refused (fail closed).
            return getattr(view, "action", None) is None and not hasattr(view, method)
        key = principal.api_key
        assert key is not None
        allowed = has_permission(principal, permission, key.organization_id)
        if not allowed:
            self.message = f"You need the '{permission}' permission for this."
        return allowed
