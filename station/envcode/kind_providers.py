"""The `providers` bundle kind: `providers.yaml`, one entry per model provider connection.

```yaml
openai:
  kind: openai
  base_url: https://api.openai.com/v1
  api_key: ${secret:OPENAI_API_KEY}
  timeout_seconds: 60
  max_retries: 2
demo:
  kind: scripted
```

Keys never travel: `api_key` is a `${secret:NAME}` reference (a bundle holding anything else is
refused), and a connection whose references name a secret the target lacks is reported as a
`missing` notice and left out, while the rest goes ahead. The file is exported only when the
environment has connections; a bundle without it leaves the target's connections alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError

from station.agents.models import agent_name_validator
from station.envcode.bundle import Errors, dump_yaml
from station.envcode.kinds import Change, Kind, load_mapping, register
from station.providers import services as providers
from station.providers.models import ModelProvider
from station.vault.models import Secret
from station.vault.services import REFERENCE
from tenants.authz import Principal
from tenants.models import Environment

FIELDS = ("kind", "base_url", "api_key", "timeout_seconds", "max_retries")
DEFAULTS: dict[str, Any] = {"base_url": "", "api_key": "", "timeout_seconds": 60,
                            "max_retries": 2}


@dataclass(frozen=True)
class ProvidersState:
    """Connections by name (every field of FIELDS), plus, for an environment's state, the
    names of its secrets (None for a bundle's state)."""

    connections: dict[str, dict[str, Any]]
    secrets: frozenset[str] | None = None


def _encode(config: dict[str, Any]) -> str:
    return json.dumps(config, sort_keys=True, ensure_ascii=False)


class ProvidersKind(Kind):
    name = "providers"
    label = "Model providers"
    read_permission = "agents.read"
    write_permission = "agents.write"
    path = "providers.yaml"
    files_hint = path
    header = ("# Model provider connections: NAME: {kind: openai|anthropic|scripted, base_url,\n"
              "# api_key, timeout_seconds, max_retries}. api_key is a ${secret:NAME} reference;\n"
              "# keys never go in a bundle.\n")

    def owns(self, path: str) -> bool:
        return path == self.path

    def export(self, environment: Environment) -> dict[str, str]:
        connections = self.current(environment).connections
        if not connections:
            return {}
        doc = {name: {k: v for k, v in config.items() if k == "kind" or v != DEFAULTS[k]}
               for name, config in connections.items()}
        return {self.path: dump_yaml(doc, self.header)}

    def parse(self, files: dict[str, str], errors: Errors) -> ProvidersState | None:
        doc = load_mapping(self.path, files, errors,
                           "must be a mapping of connection NAME: {kind: …, …}")
        if doc is None:
            return None
        connections: dict[str, dict[str, Any]] = {}
        for name, entry in doc.items():
            try:
                agent_name_validator(name if isinstance(name, str) else "")
            except ValidationError as exc:
                errors.add(self.path, f"invalid name: {exc.messages[0]}", entry=str(name))
                continue
            config = self._parse_entry(name, entry, errors)
            if config is not None:
                connections[name] = config
        return ProvidersState(dict(sorted(connections.items())))

    def _parse_entry(self, name: str, entry: Any, errors: Errors) -> dict[str, Any] | None:
        if not isinstance(entry, dict):
            errors.add(self.path, "must be a mapping with at least `kind`", entry=name)
            return None
        before = len(errors.by_field)
        for key in sorted(set(entry) - set(FIELDS), key=str):
            errors.add(self.path, f"unknown field (known: {', '.join(FIELDS)})",
                       entry=f"{name}.{key}")
        config = {**DEFAULTS, **{k: v for k, v in entry.items() if k in FIELDS}}
        for key in ("base_url", "api_key"):
            if config[key] is None:
                config[key] = ""
        # The services' own checks, minus the existence of referenced secrets and variables
        # (a missing secret is a notice, not an error: see `_blocked`).
        for field, messages in providers.validate_shape(config).items():
            for message in messages:
                errors.add(self.path, message, entry=f"{name}.{field}")
        if len(errors.by_field) != before:
            return None
        return {key: config[key] for key in FIELDS}

    def current(self, environment: Environment) -> ProvidersState:
        connections = {p.name: {key: getattr(p, key) for key in FIELDS}
                       for p in ModelProvider.objects.filter(environment=environment)
                       .order_by("name")}
        secrets = frozenset(Secret.objects.filter(environment=environment)
                            .values_list("name", flat=True))
        return ProvidersState(connections, secrets)

    def _blocked(self, name: str, config: dict[str, Any], target: ProvidersState,
                 verb: str) -> Change | None:
        if target.secrets is None:
            return None
        missing = sorted({m.group(2) for field in ("api_key", "base_url")
                          for m in REFERENCE.finditer(config[field])
                          if m.group(1) == "secret"} - target.secrets)
        if not missing:
            return None
        plural = "s" if len(missing) > 1 else ""
        return Change(self.name, name, "missing", after=_encode(config),
                      note=f"not {verb}: references secret{plural} {', '.join(missing)}, "
                           f"missing in the target — set {'them' if plural else 'it'}, then "
                           "run again")

    def diff(self, desired: ProvidersState, current: ProvidersState, *,
             prune: bool) -> list[Change]:
        changes: list[Change] = []
        for name in sorted(set(desired.connections) | set(current.connections)):
            want, have = desired.connections.get(name), current.connections.get(name)
            if want is None:
                if prune and have is not None:
                    changes.append(Change(self.name, name, "remove", before=_encode(have)))
                continue
            if want == have:
                continue
            blocked = self._blocked(name, want, current, "created" if have is None
                                    else "changed")
            if blocked is not None:
                changes.append(blocked)
            elif have is None:
                changes.append(Change(self.name, name, "add", after=_encode(want)))
            else:
                changes.append(Change(self.name, name, "change", before=_encode(have),
                                      after=_encode(want)))
        return changes

    def promote(self, source: ProvidersState, target: ProvidersState) -> list[Change]:
        # Connections travel (references as text); removals never do.
        return self.diff(source, target, prune=False)

    def apply(self, changes: list[Change], *, actor: Principal, environment: Environment) -> None:
        for change in changes:
            if change.action == "add":
                assert change.after is not None
                config = json.loads(change.after)
                providers.create_provider(actor=actor, environment=environment,
                                          name=change.name, **config)
            elif change.action == "change":
                assert change.after is not None
                connection = ModelProvider.objects.get(environment=environment,
                                                       name=change.name)
                providers.update_provider(actor=actor, provider=connection,
                                          **json.loads(change.after))
            elif change.action == "remove":
                connection = ModelProvider.objects.get(environment=environment,
                                                       name=change.name)
                providers.delete_provider(actor=actor, provider=connection)


KIND = register(ProvidersKind())
