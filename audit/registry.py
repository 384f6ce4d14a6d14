"""Every audit action, declared once with a description a reader can understand."""

from __future__ import annotations

from types import MappingProxyType

ACTIONS: MappingProxyType[str, str] = MappingProxyType(
    {
        "organization.created": "An organization was created",
        "organization.updated": "The organization's settings changed",
        "environment.created": "An environment was created",
        "environment.updated": "An environment was renamed",
        "environment.deleted": "An environment was deleted",
        "member.invited": "A person was invited and given a role",
        "member.role_changed": "A member's role changed",
        "member.environment_role_set": "A member's role in one environment was narrowed or reset",
        "member.removed": "A member was removed from the organization",
        "apikey.created": "An API key was created",
        "apikey.revoked": "An API key was revoked",
        "apikey.deleted": "An API key was deleted with the environment it was bound to",
        "secret.created": "A secret was created (its value is never recorded)",
        "secret.updated": "A secret got a new value (a new version)",
        "secret.deleted": "A secret and all its versions were deleted",
        "secret.revealed": "A worker decrypted a secret's value for a stated purpose",
        "vault.data_key_rotated": "The organization's data key was replaced; values re-encrypted",
        "vault.data_keys_rewrapped": "Data keys were re-wrapped under a new master key",
        "mcp_server.created": "An MCP server was added to an environment",
        "mcp_server.updated": "An MCP server's configuration changed",
        "mcp_server.deleted": "An MCP server and its tools were removed",
        "mcp_server.discovered": "Tools were (re)discovered on an MCP server",
        "tool.approved": "A tool's current definition was approved for use",
        "variable.set": "An environment variable was created or changed",
        "variable.deleted": "An environment variable was deleted",
        "environment.bundle_applied": "An environment bundle was applied (summary of the "
        "changes; each change has its own event too)",
        "environment.promoted": "Configuration names were promoted from another environment "
        "(summary; each change has its own event too)",
    }
)


class UnknownAuditAction(KeyError):
    pass


def check_action(action: str) -> str:
    if action not in ACTIONS:
        raise UnknownAuditAction(f"Undeclared audit action {action!r}; add it to ACTIONS.")
    return action
