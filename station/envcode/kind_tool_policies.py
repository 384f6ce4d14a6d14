"""The `tool_policies` bundle kind: `tool_policies.yaml`, one entry per tool pattern.

```yaml
clock/*: require_approval
github/delete_repo:
  effect: deny
  note: Never from an agent
```

A pattern is `server/tool` or `server/*`; the effect is `deny` or `require_approval`. An
entry whose MCP server is not (yet) in the target environment is reported as a `missing`
notice and applied by a later run once the server exists. The file is exported only when the
environment has policies; a bundle without it leaves the target's policies alone.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from station.envcode.bundle import Errors, dump_yaml
from station.envcode.kinds import Change, Kind, load_mapping, register
from station.tools import policies
from station.tools.models import McpServer, ToolPolicy
from tenants.authz import Principal
from tenants.models import Environment

_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_]*/(?:\*|[A-Za-z0-9_.\-]{1,200})$")


@dataclass(frozen=True)
class PoliciesState:
    policies: dict[str, dict[str, str]]  # pattern -> {effect, note}
    servers: frozenset[str] | None = None  # an environment's MCP server names


def _encode(entry: dict[str, str]) -> str:
    return json.dumps(entry, sort_keys=True, ensure_ascii=False)


class ToolPoliciesKind(Kind):
    name = "tool_policies"
    label = "Tool policies"
    read_permission = "tools.read"
    write_permission = "tools.manage"
    path = "tool_policies.yaml"
    files_hint = path
    header = ("# Tool policies: server/tool (or server/*): deny | require_approval, or\n"
              "# {effect: …, note: …}. The strictest matching policy wins.\n")

    def owns(self, path: str) -> bool:
        return path == self.path

    def export(self, environment: Environment) -> dict[str, str]:
        found = self.current(environment).policies
        if not found:
            return {}
        doc: dict[str, Any] = {pattern: entry["effect"] if not entry["note"] else entry
                               for pattern, entry in found.items()}
        return {self.path: dump_yaml(doc, self.header)}

    def parse(self, files: dict[str, str], errors: Errors) -> PoliciesState | None:
        doc = load_mapping(self.path, files, errors,
                           "must be a mapping of server/tool: effect")
        if doc is None:
            return None
        out: dict[str, dict[str, str]] = {}
        for pattern, value in doc.items():
            entry = str(pattern)
            if not isinstance(pattern, str) or not _PATTERN.match(pattern):
                errors.add(self.path, "write server/tool or server/*", entry=entry)
                continue
            spec = {"effect": value} if isinstance(value, str) else value
            if not isinstance(spec, dict):
                errors.add(self.path, "deny, require_approval, or {effect, note}", entry=entry)
                continue
            for key in sorted(set(spec) - {"effect", "note"}, key=str):
                errors.add(self.path, "unknown field (known: effect, note)",
                           entry=f"{entry}.{key}")
            effect, note = spec.get("effect"), spec.get("note", "")
            if effect not in policies.EFFECTS:
                errors.add(self.path, "effect must be deny or require_approval",
                           entry=f"{entry}.effect")
            elif not isinstance(note, str) or len(note) > policies.MAX_NOTE:
                errors.add(self.path, f"note must be text of at most {policies.MAX_NOTE} "
                           "characters", entry=f"{entry}.note")
            elif not set(spec) - {"effect", "note"}:
                out[pattern] = {"effect": effect, "note": note}
        return PoliciesState(dict(sorted(out.items())))

    def current(self, environment: Environment) -> PoliciesState:
        found = {p.tool: {"effect": p.effect, "note": p.note}
                 for p in ToolPolicy.objects.filter(environment=environment).order_by("tool")}
        servers = frozenset(McpServer.objects.filter(environment=environment)
                            .values_list("name", flat=True))
        return PoliciesState(found, servers)

    def diff(self, desired: PoliciesState, current: PoliciesState, *,
             prune: bool) -> list[Change]:
        changes: list[Change] = []
        for pattern in sorted(set(desired.policies) | set(current.policies)):
            want, have = desired.policies.get(pattern), current.policies.get(pattern)
            if want is None:
                if prune and have is not None:
                    changes.append(Change(self.name, pattern, "remove", before=_encode(have)))
                continue
            if want == have:
                continue
            server = pattern.split("/", 1)[0]
            if current.servers is not None and server not in current.servers:
                changes.append(Change(self.name, pattern, "missing", after=_encode(want),
                                      note=f"not set: MCP server {server!r} is not in the "
                                           "target — add it, then run again"))
            elif have is None:
                changes.append(Change(self.name, pattern, "add", after=_encode(want)))
            else:
                changes.append(Change(self.name, pattern, "change", before=_encode(have),
                                      after=_encode(want)))
        return changes

    def promote(self, source: PoliciesState, target: PoliciesState) -> list[Change]:
        return self.diff(source, target, prune=False)

    def apply(self, changes: list[Change], *, actor: Principal, environment: Environment) -> None:
        for change in changes:
            if change.action in ("add", "change"):
                assert change.after is not None
                entry = json.loads(change.after)
                policies.set_policy(actor=actor, environment=environment, tool=change.name,
                                    effect=entry["effect"], note=entry["note"])
            elif change.action == "remove":
                policy = ToolPolicy.objects.get(environment=environment, tool=change.name)
                policies.delete_policy(actor=actor, policy=policy)


KIND = register(ToolPoliciesKind())
