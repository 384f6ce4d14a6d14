"""The console's left navigation, declared once.

Later capabilities (agents, runs, secrets, ...) add their pages by appending a `NavItem` to
`NAV`; the layout shows each item only to principals holding its permission, and highlights
it on every page whose URL name is the item's name or starts with `<name>-`.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.urls import reverse
from django.utils.module_loading import import_string

from tenants.authz import Principal, has_permission
from tenants.models import Organization
from tenants.permissions import check_permission_name


@dataclass(frozen=True)
class NavItem:
    label: str
    url_name: str  # a name in frontend.urls, taking only `org_slug`
    permission: str
    group: str = "Organization"
    # Dotted path to `(principal, org) -> int`: a count shown next to the label (0 hides it).
    badge: str = ""

    def __post_init__(self) -> None:
        check_permission_name(self.permission)


NAV: list[NavItem] = [
    NavItem("Environments", "environments", "environments.read"),
    NavItem("Promote", "promote", "variables.read"),
    NavItem("Secrets", "secrets", "secrets.read", group="Configuration"),
    NavItem("Variables", "variables", "variables.read", group="Configuration"),
    NavItem("MCP servers", "mcp", "tools.read", group="Tools"),
    NavItem("Tool policies", "tool-policies", "tools.read", group="Tools"),
    NavItem("Agents", "agents", "agents.read", group="Agents"),
    NavItem("Model providers", "providers", "agents.read", group="Agents"),
    NavItem("Triggers", "triggers", "agents.read", group="Agents"),
    NavItem("Runs", "runs", "runs.read", group="Runs"),
    NavItem("Approvals", "approvals", "runs.read", group="Runs",
            badge="frontend.views.approvals.pending_count"),
    NavItem("Members", "members", "members.read", group="Access"),
    NavItem("Roles", "roles", "roles.read", group="Access"),
    NavItem("API keys", "apikeys", "apikeys.read", group="Access"),
    NavItem("Single sign-on", "sso", "org.manage", group="Access"),
    NavItem("SCIM provisioning", "scim", "org.manage", group="Access"),
    NavItem("Security", "security", "org.manage", group="Access"),
    NavItem("Audit log", "audit", "audit.read", group="Governance"),
]


@dataclass(frozen=True)
class NavLink:
    label: str
    url: str
    group: str
    active: bool
    badge: int = 0


def nav_for(
    principal: Principal, org: Organization, current_url_name: str | None
) -> list[NavLink]:
    """The items this principal may open in this org, as links for the layout."""
    current = current_url_name or ""
    return [
        NavLink(
            label=item.label,
            url=reverse(f"console:{item.url_name}", kwargs={"org_slug": org.slug}),
            group=item.group,
            active=current == item.url_name or current.startswith(f"{item.url_name}-"),
            badge=import_string(item.badge)(principal, org) if item.badge else 0,
        )
        for item in NAV
        if has_permission(principal, item.permission, org)
    ]
