"""The `mcp_servers` bundle kind: `mcp_servers.yaml`, one entry per MCP server.

```yaml
clock:
  transport: stdio
  command: /opt/mcp/bin/mcp-server-time
  args: [--local-timezone, UTC]
  env:
    TOKEN: ${secret:CLOCK_TOKEN}
  description: Tells the time
  enabled: true
  reuse_sessions: true   # only for stateless servers; false (a session per run) when absent
```

References (`${secret:NAME}`, `${var:NAME}`) travel as text, never resolved. A server whose
configuration references a secret the target environment lacks is not created or changed
(the services refuse it): it is reported as a `missing` notice naming the secret, and the
rest of the bundle or promotion goes ahead. The file is exported only when the environment
has MCP servers; a bundle without it leaves the target's servers alone.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from station.envcode.bundle import Errors, dump_yaml
from station.envcode.kinds import Change, Kind, _name_error, load_mapping, register
from station.tools import services as tools
from station.tools.models import McpServer
from station.vault.models import Secret
from station.vault.services import REFERENCE
from tenants.authz import Principal
from tenants.models import Environment

FIELDS = ("transport", "command", "args", "env", "url", "headers", "description", "enabled",
          "reuse_sessions")
# reuse_sessions defaults to False so a bundle written before it existed still applies, and
# never turns reuse on by omission.
DEFAULTS: dict[str, Any] = {"command": "", "args": [], "env": {}, "url": "", "headers": {},
                            "description": "", "enabled": True, "reuse_sessions": False}
_ANY_REFERENCE = re.compile(r"\$\{[^}]*\}?")
_MAX_DESCRIPTION = 500


@dataclass(frozen=True)
class McpServersState:
    """Servers by name (each a full configuration: every field of FIELDS), plus, for an
    environment's state, the names of the secrets it holds (None for a bundle's state)."""

    servers: dict[str, dict[str, Any]]
    secrets: frozenset[str] | None = None


def references(config: dict[str, Any]) -> set[tuple[str, str]]:
    texts = [config.get("command", ""), config.get("url", ""), *config.get("args", []),
             *config.get("env", {}).values(), *config.get("headers", {}).values()]
    return {(m.group(1), m.group(2)) for text in texts for m in REFERENCE.finditer(str(text))}


def _encode(config: dict[str, Any]) -> str:
    return json.dumps(config, sort_keys=True, ensure_ascii=False)


class McpServersKind(Kind):
    name = "mcp_servers"
    label = "MCP servers"
    read_permission = "tools.read"
    write_permission = "tools.manage"
    path = "mcp_servers.yaml"
    files_hint = path
    header = ("# MCP servers: NAME: {transport: stdio|http, command, args, env, url, headers,\n"
              "# description, enabled, reuse_sessions}. Reference secrets and variables as\n"
              "# ${secret:NAME} and ${var:NAME}; values never go in a bundle. reuse_sessions:\n"
              "# true only for stateless servers (a warm session serves several runs).\n")

    def owns(self, path: str) -> bool:
        return path == self.path

    def export(self, environment: Environment) -> dict[str, str]:
        servers = self.current(environment).servers
        if not servers:
            return {}
        # reuse_sessions is written only when on (off is the default): exports of servers that
        # never opted in stay as they were.
        doc = {name: {key: value for key, value in config.items()
                      if key in ("transport", "enabled")
                      or (value is not False and value not in ("", [], {}))}
               for name, config in servers.items()}
        return {self.path: dump_yaml(doc, self.header)}

    # --- parse -------------------------------------------------------------------------------

    def parse(self, files: dict[str, str], errors: Errors) -> McpServersState | None:
        doc = load_mapping(self.path, files, errors,
                           "must be a mapping of server NAME: {transport: …, …}")
        if doc is None:
            return None
        servers: dict[str, dict[str, Any]] = {}
        for name, entry in doc.items():
            if (problem := _name_error(name)) is not None:
                errors.add(self.path, f"invalid name: {problem}", entry=str(name))
                continue
            config = self._parse_entry(name, entry, errors)
            if config is not None:
                servers[name] = config
        return McpServersState(dict(sorted(servers.items())))

    def _parse_entry(self, name: str, entry: Any, errors: Errors) -> dict[str, Any] | None:
        def problem(message: str, key: str | None = None) -> None:
            errors.add(self.path, message, entry=f"{name}.{key}" if key else name)

        if not isinstance(entry, dict):
            problem("must be a mapping with at least `transport`")
            return None
        before = len(errors.by_field)
        for key in sorted(set(entry) - set(FIELDS), key=str):
            problem(f"unknown field (known: {', '.join(FIELDS)})", str(key))
        config = {**DEFAULTS, **{k: v for k, v in entry.items() if k in FIELDS}}
        transport = config.get("transport")
        if transport not in (McpServer.STDIO, McpServer.HTTP):
            problem("required: stdio or http", "transport")
        for key in ("command", "url", "description"):
            if not isinstance(config[key], str):
                problem(f"must be text, got {type(config[key]).__name__}", key)
        if isinstance(config["description"], str) and \
                len(config["description"]) > _MAX_DESCRIPTION:
            problem(f"longer than {_MAX_DESCRIPTION} characters", "description")
        for key in ("enabled", "reuse_sessions"):
            if not isinstance(config[key], bool):
                problem("must be true or false", key)
        if not isinstance(config["args"], list) or not all(
                isinstance(a, str) for a in config["args"]):
            problem("must be a list of text (quote numbers)", "args")
        for key in ("env", "headers"):
            value = config[key]
            if not isinstance(value, dict):
                problem("must be a mapping of NAME: text", key)
                continue
            for sub, text in value.items():
                if not isinstance(sub, str) or not isinstance(text, str):
                    problem("names and values must be text (quote numbers)", f"{key}.{sub}")
        if transport == McpServer.STDIO and config["command"] == "":
            problem("a stdio server needs the command that starts it", "command")
        if transport == McpServer.HTTP and config["url"] == "":
            problem("an http server needs its url", "url")
        if len(errors.by_field) != before:
            return None
        for text in [config["command"], config["url"], *config["args"],
                     *config["env"].values(), *config["headers"].values()]:
            for match in _ANY_REFERENCE.finditer(text):
                if not REFERENCE.fullmatch(match.group(0)):
                    problem(f"bad reference {match.group(0)!r}: write ${{secret:NAME}} or "
                            "${var:NAME}")
        if len(errors.by_field) != before:
            return None
        return {key: config[key] for key in FIELDS}

    # --- state, diff, promotion ---------------------------------------------------------------

    def current(self, environment: Environment) -> McpServersState:
        servers = {server.name: {key: getattr(server, key) for key in FIELDS}
                   for server in McpServer.objects.filter(environment=environment)
                   .order_by("name")}
        secrets = frozenset(Secret.objects.filter(environment=environment)
                            .values_list("name", flat=True))
        return McpServersState(servers, secrets)

    def _blocked(self, name: str, config: dict[str, Any], target: McpServersState,
                 verb: str) -> Change | None:
        """A `missing` notice when `config` references secrets `target` lacks."""
        if target.secrets is None:
            return None
        missing = sorted(ref for kind, ref in references(config)
                         if kind == "secret" and ref not in target.secrets)
        if not missing:
            return None
        names = ", ".join(missing)
        plural = "s" if len(missing) > 1 else ""
        return Change(self.name, name, "missing", after=_encode(config),
                      note=f"not {verb}: references secret{plural} {names}, missing in the "
                           f"target — set {'them' if plural else 'it'}, then run again")

    def diff(self, desired: McpServersState, current: McpServersState, *,
             prune: bool) -> list[Change]:
        changes: list[Change] = []
        for name in sorted(set(desired.servers) | set(current.servers)):
            want, have = desired.servers.get(name), current.servers.get(name)
            if want is None:
                if prune and have is not None:
                    changes.append(Change(self.name, name, "remove", before=_encode(have)))
                continue
            if want == have:
                continue
            verb = "created" if have is None else "changed"
            blocked = self._blocked(name, want, current, verb)
            if blocked is not None:
                changes.append(blocked)
            elif have is None:
                changes.append(Change(self.name, name, "add", after=_encode(want)))
            else:
                changes.append(Change(self.name, name, "change", before=_encode(have),
                                      after=_encode(want)))
        return changes

    def promote(self, source: McpServersState, target: McpServersState) -> list[Change]:
        # Configurations travel (references as text); removals never do.
        return self.diff(source, target, prune=False)

    def apply(self, changes: list[Change], *, actor: Principal, environment: Environment) -> None:
        for change in changes:
            if change.action == "add":
                assert change.after is not None
                tools.create_mcp_server(actor=actor, environment=environment, name=change.name,
                                        **json.loads(change.after))
            elif change.action == "change":
                assert change.after is not None
                server = McpServer.objects.get(environment=environment, name=change.name)
                tools.update_mcp_server(actor=actor, server=server, **json.loads(change.after))
            elif change.action == "remove":
                server = McpServer.objects.get(environment=environment, name=change.name)
                tools.delete_mcp_server(actor=actor, server=server)


KIND = register(McpServersKind())
