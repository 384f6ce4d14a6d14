"""The `schedules` bundle kind: `schedules.yaml`, one entry per named schedule.

```yaml
weekday-report:
  agent: triage-bot
  cron: 0 9 * * 1-5
  timezone: Europe/Paris
  input: {question: "What changed overnight?"}
  enabled: true
```

Schedules are matched by name within the environment; unnamed schedules (made in the console
or API without a name) are not managed by bundles and are left alone. An entry whose agent is
not (yet) in the target environment is a `missing` notice, applied by a later run once the
agent exists. The file is exported only when the environment has named schedules.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from station.agents.models import Agent
from station.core.errors import InvalidInput
from station.envcode.bundle import Errors, dump_yaml
from station.envcode.kinds import Change, Kind, load_mapping, register
from station.triggers import cron, services
from station.triggers.models import Schedule
from tenants.authz import Principal
from tenants.models import Environment

_FIELDS = ("agent", "cron", "timezone", "input", "enabled")


@dataclass(frozen=True)
class SchedulesState:
    schedules: dict[str, dict[str, Any]]  # name -> {agent, cron, timezone, input, enabled}
    agents: frozenset[str] | None = None  # the environment's agent names


def _encode(entry: dict[str, Any]) -> str:
    return json.dumps(entry, sort_keys=True, ensure_ascii=False)


class SchedulesKind(Kind):
    name = "schedules"
    label = "Schedules"
    read_permission = "agents.read"
    write_permission = "agents.write"
    path = "schedules.yaml"
    files_hint = path
    header = ("# Schedules: name: {agent, cron (minute hour day month weekday), timezone\n"
              "# (IANA, default UTC), input (object), enabled (default true)}.\n")

    def owns(self, path: str) -> bool:
        return path == self.path

    def export(self, environment: Environment) -> dict[str, str]:
        found = self.current(environment).schedules
        if not found:
            return {}
        return {self.path: dump_yaml(found, self.header)}

    def parse(self, files: dict[str, str], errors: Errors) -> SchedulesState | None:
        doc = load_mapping(self.path, files, errors,
                           "must be a mapping of schedule name: {agent, cron, …}")
        if doc is None:
            return None
        out: dict[str, dict[str, Any]] = {}
        for name, spec in doc.items():
            entry = str(name)
            if not isinstance(name, str) or not name.strip() or len(name) > 100:
                errors.add(self.path, "a schedule name is 1–100 characters", entry=entry)
                continue
            if not isinstance(spec, dict):
                errors.add(self.path, "must be {agent, cron, timezone, input, enabled}",
                           entry=entry)
                continue
            bad = False
            for key in sorted(set(spec) - set(_FIELDS), key=str):
                errors.add(self.path, "unknown field (known: " + ", ".join(_FIELDS) + ")",
                           entry=f"{entry}.{key}")
                bad = True
            value = {"agent": spec.get("agent"), "cron": " ".join(str(spec.get("cron", ""))
                                                                  .split()),
                     "timezone": spec.get("timezone", "UTC"), "input": spec.get("input", {}),
                     "enabled": spec.get("enabled", True)}
            if not isinstance(value["agent"], str) or not value["agent"]:
                errors.add(self.path, "agent: the name of an agent in this environment",
                           entry=f"{entry}.agent")
                bad = True
            for field, check in (("cron", cron.parse), ("timezone", cron.zone)):
                try:
                    check(value[field])
                except InvalidInput as exc:
                    errors.add(self.path, exc.errors[field][0], entry=f"{entry}.{field}")
                    bad = True
            if not isinstance(value["input"], dict):
                errors.add(self.path, "input must be a mapping", entry=f"{entry}.input")
                bad = True
            if not isinstance(value["enabled"], bool):
                errors.add(self.path, "enabled must be true or false",
                           entry=f"{entry}.enabled")
                bad = True
            if not bad:
                out[name] = value
        return SchedulesState(dict(sorted(out.items())))

    def current(self, environment: Environment) -> SchedulesState:
        found: dict[str, dict[str, Any]] = {}
        for s in (Schedule.objects.filter(environment=environment).exclude(name="")
                  .select_related("agent").order_by("name", "created_at")):
            found.setdefault(s.name, {"agent": s.agent.name, "cron": s.cron,
                                      "timezone": s.timezone, "input": s.input,
                                      "enabled": s.enabled})
        agents = frozenset(Agent.objects.filter(environment=environment)
                           .values_list("name", flat=True))
        return SchedulesState(found, agents)

    def diff(self, desired: SchedulesState, current: SchedulesState, *,
             prune: bool) -> list[Change]:
        changes: list[Change] = []
        for name in sorted(set(desired.schedules) | set(current.schedules)):
            want, have = desired.schedules.get(name), current.schedules.get(name)
            if want is None:
                if prune and have is not None:
                    changes.append(Change(self.name, name, "remove", before=_encode(have)))
                continue
            if want == have:
                continue
            if current.agents is not None and want["agent"] not in current.agents:
                changes.append(Change(self.name, name, "missing", after=_encode(want),
                                      note=f"not set: agent {want['agent']!r} is not in the "
                                           "target — add it, then run again"))
            elif have is None:
                changes.append(Change(self.name, name, "add", after=_encode(want)))
            else:
                changes.append(Change(self.name, name, "change", before=_encode(have),
                                      after=_encode(want)))
        return changes

    def promote(self, source: SchedulesState, target: SchedulesState) -> list[Change]:
        return self.diff(source, target, prune=False)

    def apply(self, changes: list[Change], *, actor: Principal, environment: Environment) -> None:
        for change in changes:
            existing = (Schedule.objects.filter(environment=environment, name=change.name)
                        .select_related("agent").order_by("created_at").first())
            if change.action == "remove" and existing is not None:
                services.delete_schedule(actor=actor, schedule=existing)
                continue
            if change.action not in ("add", "change"):
                continue
            assert change.after is not None
            want = json.loads(change.after)
            agent = Agent.objects.get(environment=environment, name=want["agent"])
            if existing is not None and existing.agent_id != agent.pk:
                services.delete_schedule(actor=actor, schedule=existing)
                existing = None
            if existing is None:
                services.create_schedule(actor=actor, agent=agent, name=change.name,
                                         cron_expression=want["cron"],
                                         timezone_name=want["timezone"], input=want["input"],
                                         enabled=want["enabled"])
            else:
                services.update_schedule(actor=actor, schedule=existing, cron=want["cron"],
                                         timezone=want["timezone"], input=want["input"],
                                         enabled=want["enabled"])


KIND = register(SchedulesKind())
