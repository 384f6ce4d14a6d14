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
        "role.created": "A custom role was defined with a set of permissions",
        "role.updated": "A custom role's permissions or description changed (holders have the "
        "new set from their next request)",
        "role.deleted": "A custom role that nobody held any more was deleted",
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
        "tool_policy.set": "A tool policy (deny or require approval) was set in an environment",
        "tool_policy.deleted": "A tool policy was removed",
        "provider.created": "A model provider connection was added to an environment",
        "provider.updated": "A model provider connection changed",
        "provider.deleted": "A model provider connection was removed",
        "agent.created": "An agent was created",
        "agent.updated": "An agent's working copy changed",
        "agent.deleted": "An agent, its versions and its runs were deleted",
        "agent.published": "An agent's working copy was published as a new immutable version",
        "agent.imported": "An agent was created or updated from a dotprompt file",
        "run.started": "A run was queued (by a person, a key, a schedule or a webhook)",
        "run.cancel_requested": "Someone asked for a run to be cancelled",
        "run.finished": "A run reached its final state",
        "run.retried": "A run whose worker died was queued again",
        "run.tool_call_held": "A run paused: a tool call needs a human approval",
        "run.tool_call_approved": "A held tool call was approved; the run resumes",
        "run.tool_call_rejected": "A held tool call was rejected; the run fails",
        "schedule.created": "A cron schedule was added to an agent",
        "schedule.updated": "A cron schedule changed",
        "schedule.deleted": "A cron schedule was removed",
        "webhook.created": "An inbound or outbound webhook was added to an agent",
        "webhook.updated": "A webhook changed",
        "webhook.deleted": "A webhook was removed",
        "webhook.secret_rotated": "A webhook's signing secret was replaced",
        "variable.set": "An environment variable was created or changed",
        "variable.deleted": "An environment variable was deleted",
        "identity.saml_configured": "The organization's SAML identity provider was set or changed",
        "identity.saml_removed": "The organization's SAML identity provider was removed",
        "identity.oidc_configured": "The organization's OpenID Connect provider was set or "
        "changed (the client secret is never recorded)",
        "identity.oidc_removed": "The organization's OpenID Connect provider was removed",
        "identity.domain_added": "An email domain was claimed (DNS verification pending)",
        "identity.domain_verified": "An email domain was verified by its DNS TXT record",
        "identity.domain_removed": "An email domain was removed",
        "identity.group_mapping_set": "An IdP group was mapped to a role",
        "identity.group_mapping_deleted": "An IdP group mapping was removed",
        "identity.sso_login_succeeded": "A person signed in through the organization's IdP",
        "identity.sso_login_failed": "A sign-in through the organization's IdP was refused "
        "(the reason is recorded)",
        "identity.sso_provisioned": "First SSO sign-in: the account and/or membership was "
        "created just in time",
        "identity.sso_test_succeeded": "An admin's connection test of the organization's IdP "
        "passed every sign-in check (nobody was signed in or provisioned; the would-be "
        "outcome is recorded)",
        "identity.sso_test_failed": "An admin's connection test of the organization's IdP was "
        "refused (the reason is recorded)",
        "scim.token_created": "A SCIM provisioning token was created (shown once)",
        "scim.token_revoked": "A SCIM provisioning token was revoked",
        "scim.user_created": "The IdP provisioned a user over SCIM (account and/or membership)",
        "scim.user_updated": "The IdP changed a provisioned user's attributes over SCIM",
        "scim.user_deactivated": "The IdP deactivated a user: membership, sessions and the "
                                 "user's API keys in this organization ended",
        "scim.user_reactivated": "The IdP reactivated a user: the membership was restored",
        "scim.user_deleted": "The IdP deleted a user: their access to this organization ended",
        "scim.group_created": "The IdP pushed a group over SCIM",
        "scim.group_updated": "The IdP renamed a group or changed its members over SCIM",
        "scim.group_deleted": "The IdP deleted a group over SCIM",
        "identity.break_glass_login": "An owner signed in with a password although the "
        "organization enforces SSO (break-glass)",
        "account.login_succeeded": "A person signed in with a password (and second factor, "
        "if enrolled); the methods are recorded. SSO sign-ins are identity.sso_login_*",
        "account.login_failed": "A sign-in was refused: wrong password, wrong MFA code, "
        "inactive account or too many attempts (the reason is recorded)",
        "account.logout": "A person signed out",
        "account.mfa_enrolled": "A person added a second factor (authenticator app or "
        "recovery codes)",
        "account.mfa_removed": "A person removed a second factor",
        "account.recovery_codes_regenerated": "A person generated a new set of recovery codes",
        "account.recovery_code_used": "A person signed in or re-authenticated with a recovery "
        "code",
        "account.session_revoked": "A person signed one of their browsers out",
        "account.signed_out_everywhere": "An admin ended every session of a member",
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
