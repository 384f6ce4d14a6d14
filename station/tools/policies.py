"""Environment-wide tool policies: writes (STYLE.md §1) and the check the run loop asks.

A policy names `server/tool` or `server/*` and has an effect: `deny` (no agent in the
environment may call it, whatever its allowlist says) or `require_approval` (each call waits
for a human). When several policies match a call, the strictest wins: deny, then approval.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from django.db import transaction

from audit import services as audit
from station.core.errors import InvalidInput
from station.tools.models import McpServer, ToolPolicy
from tenants.authz import Principal, authorize
from tenants.models import Environment

Effect = Literal["deny", "require_approval"]
EFFECTS = (ToolPolicy.DENY, ToolPolicy.REQUIRE_APPROVAL)
MAX_NOTE = 500
# Tool names as MCP servers publish them; `*` stands for every tool of the server.
_TOOL = re.compile(r"^(?:\*|[A-Za-z0-9_.\-]{1,200})$")


def _validate(environment: Environment, tool: str, effect: str, note: str) -> None:
    errors: dict[str, list[str]] = {}
    server, sep, name = tool.partition("/") if isinstance(tool, str) else ("", "", "")
    if not sep or not server or not _TOOL.match(name):
        errors["tool"] = ["Write server/tool or server/* (every tool of the server), "
                          "e.g. github/delete_repo."]
    elif not McpServer.objects.filter(environment=environment, name=server).exists():
        errors["tool"] = [f"No MCP server named {server!r} in {environment.slug}."]
    if effect not in EFFECTS:
        errors["effect"] = ["Choose 'deny' or 'require_approval'."]
    if not isinstance(note, str) or len(note) > MAX_NOTE:
        errors["note"] = [f"Text of at most {MAX_NOTE} characters."]
    if errors:
        first = next(iter(errors))
        raise InvalidInput(f"{first}: {errors[first][0]}", errors=errors)


@transaction.atomic
def set_policy(*, actor: Principal, environment: Environment, tool: str, effect: str,
               note: str = "") -> ToolPolicy:
    """Create the policy for `tool` in `environment`, or change its effect and note."""
    authorize(actor, "tools.manage", environment.organization_id, environment)
    _validate(environment, tool, effect, note)
    policy = ToolPolicy.objects.select_for_update().filter(environment=environment,
                                                           tool=tool).first()
    changes: dict[str, Any]
    if policy is None:
        policy = ToolPolicy.objects.create(environment=environment, tool=tool, effect=effect,
                                           note=note)
        changes = {"tool": tool, "effect": effect, "note": note}
    else:
        changes = {k: audit.change(getattr(policy, k), v)
                   for k, v in (("effect", effect), ("note", note)) if getattr(policy, k) != v}
        if not changes:
            return policy
        policy.effect, policy.note = effect, note
        policy.save(update_fields=["effect", "note"])
        changes["tool"] = tool
    audit.record("tool_policy.set", actor=actor, target=policy,
                 environment_id=environment.pk, changes=changes)
    return policy


@transaction.atomic
def delete_policy(*, actor: Principal, policy: ToolPolicy) -> None:
    authorize(actor, "tools.manage", policy.organization_id, policy.environment)
    audit.record("tool_policy.deleted", actor=actor, target=policy,
                 environment_id=policy.environment_id,
                 changes={"tool": policy.tool, "effect": policy.effect})
    policy.delete()


def policy_for(environment: Environment, server: str, tool: str) -> Effect | None:
    """The effect that applies to a call of `server/tool` in `environment`: "deny",
    "require_approval", or None (no policy: the agent's allowlist alone decides)."""
    effects = set(ToolPolicy.objects.filter(
        environment=environment, tool__in=(f"{server}/{tool}", f"{server}/*"))
        .values_list("effect", flat=True))
    if ToolPolicy.DENY in effects:
        return "deny"
    if ToolPolicy.REQUIRE_APPROVAL in effects:
        return "require_approval"
    return None


def effects_for(environment: Environment,
                pairs: list[tuple[str, str]]) -> dict[tuple[str, str], Effect | None]:
    """`policy_for` for many `(server, tool)` pairs in one query (a run's allowlist)."""
    policies = list(ToolPolicy.objects.filter(
        environment=environment,
        tool__in={name for server, tool in pairs for name in (f"{server}/{tool}",
                                                              f"{server}/*")}))
    result: dict[tuple[str, str], Effect | None] = {}
    for server, tool in pairs:
        effects = {p.effect for p in policies if p.matches(server, tool)}
        result[(server, tool)] = ("deny" if ToolPolicy.DENY in effects else
                                  "require_approval" if ToolPolicy.REQUIRE_APPROVAL in effects
                                  else None)
    return result
