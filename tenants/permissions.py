"""The permission registry and the built-in roles. Every permission string is declared here."""

from __future__ import annotations

from types import MappingProxyType

PERMISSIONS: MappingProxyType[str, str] = MappingProxyType(
    {
        "org.read": "See the organization's settings",
        "org.manage": "Change the organization's settings",
        "environments.read": "List and view environments",
        "environments.write": "Create and rename environments",
        "environments.delete": "Delete environments",
        "members.read": "List members and their roles",
        "members.manage": "Invite and remove members, change their roles",
        "roles.read": "List roles and their permissions",
        "roles.manage": "Create, edit and delete the organization's custom roles",
        "apikeys.read": "List API keys (never their secrets)",
        "apikeys.manage": "Create and revoke API keys",
        "audit.read": "Read and export the audit log",
        "billing.read": "See plans, usage and invoices",
        "billing.manage": "Change plans and payment details",
        "agents.read": "View agents and their versions",
        "agents.write": "Create, edit and publish agents",
        "agents.run": "Start agent runs",
        "runs.read": "View runs and their steps",
        "runs.cancel": "Cancel runs",
        "runs.approve": "Approve or reject held tool calls",
        "tools.read": "View MCP servers and tools",
        "tools.manage": "Add MCP servers, approve changed tools, set tool policies",
        "secrets.read": "List secret names and metadata (never values)",
        "secrets.write": "Create, rotate and delete secrets",
        "variables.read": "List environment variables and their values",
        "variables.write": "Set and delete environment variables",
    }
)


def _all(*prefixes: str) -> frozenset[str]:
    return frozenset(p for p in PERMISSIONS if p.split(".")[0] in prefixes)


_READ = frozenset(p for p in PERMISSIONS if p.endswith(".read")) - {"audit.read", "billing.read"}

ROLES: MappingProxyType[str, frozenset[str]] = MappingProxyType(
    {
        "owner": frozenset(PERMISSIONS),
        "admin": frozenset(PERMISSIONS) - {"billing.manage"},
        "developer": _READ
        | {"environments.write", "agents.write", "agents.run", "runs.cancel", "tools.manage",
           "secrets.write", "variables.write"},
        "operator": _READ | {"agents.run", "runs.cancel", "runs.approve"},
        "viewer": _READ,
        "auditor": _READ | {"audit.read"},
        "billing": frozenset({"org.read", "billing.read", "billing.manage"}),
    }
)

ROLE_DESCRIPTIONS: MappingProxyType[str, str] = MappingProxyType(
    {
        "owner": "Full control, including billing; at least one per organization",
        "admin": "Everything except billing",
        "developer": "Builds agents, tools and secrets; runs agents",
        "operator": "Runs agents, cancels runs and approves held tool calls",
        "viewer": "Read-only access to configuration and runs",
        "auditor": "Read-only access plus the audit log",
        "billing": "Plans, usage and invoices",
    }
)

# What an environment-bound API key may hold: permissions on resources that live in an
# environment (checked against that environment), plus a few harmless org-level reads. Org
# administration (members, keys, audit, billing, environments themselves) is never theirs.
ENVIRONMENT_SCOPED_AREAS = frozenset({"agents", "runs", "tools", "secrets", "variables"})
BOUND_KEY_PERMISSIONS = frozenset(
    {"org.read", "roles.read", "environments.read"}
    | {p for p in PERMISSIONS if p.split(".")[0] in ENVIRONMENT_SCOPED_AREAS}
)

# Permissions only an owner holds, so the last owner is load-bearing.
OWNER_ROLE = "owner"


class UnknownPermission(KeyError):
    pass


def check_permission_name(permission: str) -> str:
    if permission not in PERMISSIONS:
        raise UnknownPermission(f"Undeclared permission {permission!r}; add it to PERMISSIONS.")
    return permission


def role_permissions(role: str) -> frozenset[str]:
    """A built-in role's permissions (empty for any other name). Custom roles live in the
    database: use `tenants.roles.permissions_of(org_id, role)` for any role name."""
    return ROLES.get(role, frozenset())
