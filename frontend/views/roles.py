from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import render

from frontend.access import OrgRequest, org_view
from tenants.permissions import PERMISSIONS, ROLE_DESCRIPTIONS, ROLES


@org_view("roles.read")
def role_list(request: OrgRequest) -> HttpResponse:
    roles = [
        {
            "name": name,
            "description": ROLE_DESCRIPTIONS.get(name, ""),
            "permissions": [(p, PERMISSIONS[p]) for p in PERMISSIONS if p in perms],
            "count": len(perms),
        }
        for name, perms in ROLES.items()
    ]
    return render(request, "console/roles/list.html", {
        "roles": roles, "total_permissions": len(PERMISSIONS),
    })
