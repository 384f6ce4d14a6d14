"""The `agents` bundle kind: one dotprompt file per agent, `agents/<name>.prompt`.

Each file is the agent's working copy in dotprompt form (see `station.agents.dotprompt`), so
a bundle in git diffs like the prompts themselves. Applying creates or updates working copies
through the agent services; it does **not** publish, unless the file says
`metadata: {station: {publish: true}}`, in which case the agent is published after it is
applied whenever its definition differs from its latest version. Export never writes
`publish`: a bundle carries working copies.

Promotion is different: it carries *published versions*. Promoting staging to prod makes
each agent's latest staging version the prod working copy and publishes it there (a new prod
version, unless prod's latest already has that definition); agents never published in the
source are reported, not promoted, and unpublished edits in the source stay behind.

An agent whose provider or tools the target environment lacks is not created or changed: it
is reported as a `missing` notice (add the provider, discover the MCP server's tools, then
apply again), and the rest of the bundle goes ahead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from station.agents import dotprompt
from station.agents import services as agents
from station.agents.models import Agent
from station.agents.selectors import latest_version
from station.agents.validation import check_name, check_portable
from station.core.errors import InvalidInput
from station.envcode.bundle import Errors
from station.envcode.kinds import Change, Kind, register
from station.providers.models import ModelProvider
from station.tools.models import Tool
from tenants.authz import Principal
from tenants.models import Environment

PREFIX, SUFFIX = "agents/", ".prompt"


@dataclass(frozen=True)
class Wanted:
    definition: dict[str, Any]
    publish: bool = False
    published_hash: str | None = None  # an environment's state: its latest version's hash
    published: dict[str, Any] | None = None  # and its latest version's definition


@dataclass(frozen=True)
class AgentsState:
    agents: dict[str, Wanted]
    # For an environment's state: what agents there may name (None for a bundle's state).
    providers: frozenset[str] | None = None
    tools: frozenset[str] | None = None


def _text(name: str, wanted: Wanted) -> str:
    return dotprompt.render(name, wanted.definition, publish=wanted.publish)


class AgentsKind(Kind):
    name = "agents"
    label = "Agents"
    read_permission = "agents.read"
    write_permission = "agents.write"
    files_hint = "agents/<name>.prompt"

    def owns(self, path: str) -> bool:
        return path.startswith(PREFIX)

    def export(self, environment: Environment) -> dict[str, str]:
        return {f"{PREFIX}{name}{SUFFIX}": _text(name, Wanted(wanted.definition))
                for name, wanted in self.current(environment).agents.items()}

    def parse(self, files: dict[str, str], errors: Errors) -> AgentsState | None:
        if not files:
            return None
        out: dict[str, Wanted] = {}
        for path, text in sorted(files.items()):
            name = path[len(PREFIX):-len(SUFFIX)] if path.endswith(SUFFIX) else ""
            if not name or "/" in name:
                errors.add(path, f"not an agent file: write {PREFIX}<name>{SUFFIX}")
                continue
            problems: dict[str, list[str]] = {}
            check_name(name, problems)
            if problems:
                errors.add(path, f"invalid agent name: {problems['name'][0]}")
                continue
            try:
                parsed = dotprompt.parse(text)
            except InvalidInput as exc:
                for key, messages in exc.errors.items():
                    for message in messages:
                        errors.add(path, message, entry=key)
                continue
            if parsed.name is not None and parsed.name != name:
                errors.add(path, f"the file says name: {parsed.name}, its path says {name}",
                           entry="name")
                continue
            portable = check_portable(parsed.definition)
            for key, messages in dotprompt.rekey(portable, parsed, text).items():
                for message in messages:
                    errors.add(path, message, entry=key)
            if not portable:
                out[name] = Wanted(parsed.definition, parsed.publish)
        return AgentsState(out)

    def current(self, environment: Environment) -> AgentsState:
        wanted = {}
        for agent in Agent.objects.filter(environment=environment).order_by("name"):
            version = latest_version(agent)
            wanted[agent.name] = Wanted(
                agent.definition(), published_hash=version.content_hash if version else None,
                published=version.definition if version else None)
        providers = frozenset(ModelProvider.objects.filter(environment=environment)
                              .values_list("name", flat=True))
        tools = frozenset(f"{server}/{tool}" for server, tool in Tool.objects.filter(
            server__environment=environment).exclude(status=Tool.REMOVED)
            .values_list("server__name", "name"))
        return AgentsState(wanted, providers, tools)

    def _blocked(self, name: str, wanted: Wanted, target: AgentsState,
                 verb: str) -> Change | None:
        if target.providers is None or target.tools is None:
            return None
        problems = []
        provider = wanted.definition["provider"]
        if provider not in target.providers:
            problems.append(f"model provider {provider!r} is missing in the target — add it")
        tools = sorted(set(wanted.definition["allowed_tools"]) - target.tools)
        if tools:
            problems.append(f"tool{'s' * (len(tools) > 1)} {', '.join(tools)} not discovered "
                            "in the target — add the MCP server and discover its tools")
        if not problems:
            return None
        return Change(self.name, name, "missing", after=_text(name, wanted),
                      note=f"not {verb}: {'; '.join(problems)}, then run again")

    def diff(self, desired: AgentsState, current: AgentsState, *,
             prune: bool) -> list[Change]:
        changes: list[Change] = []
        for name in sorted(set(desired.agents) | set(current.agents)):
            want, have = desired.agents.get(name), current.agents.get(name)
            if want is None:
                if prune and have is not None:
                    changes.append(Change(self.name, name, "remove", before=_text(name, have)))
                continue
            needs_publish = want.publish and (
                have is None or have.published_hash != agents.content_hash(want.definition))
            if have is not None and want.definition == have.definition and not needs_publish:
                continue
            verb = "created" if have is None else "changed"
            blocked = self._blocked(name, want, current, verb)
            if blocked is not None:
                changes.append(blocked)
                continue
            note = "and published" if needs_publish else ""
            if have is None:
                changes.append(Change(self.name, name, "add", after=_text(name, want),
                                      note=note))
            else:
                changes.append(Change(self.name, name, "change", before=_text(name, have),
                                      after=_text(name, want), note=note))
        return changes

    def promote(self, source: AgentsState, target: AgentsState) -> list[Change]:
        # Published versions travel (and are published in the target); drafts stay behind.
        desired = {name: Wanted(wanted.published, publish=True)
                   for name, wanted in source.agents.items() if wanted.published is not None}
        never = [Change(self.name, name, "missing", note="never published in the source: "
                                                           "publish it there to promote it")
                 for name, wanted in sorted(source.agents.items())
                 if wanted.published is None and name not in target.agents]
        return never + self.diff(AgentsState(desired), target, prune=False)

    def apply(self, changes: list[Change], *, actor: Principal, environment: Environment) -> None:
        for change in changes:
            if change.action == "remove":
                agent = Agent.objects.get(environment=environment, name=change.name)
                agents.delete_agent(actor=actor, agent=agent)
                continue
            if change.action not in ("add", "change"):
                continue
            assert change.after is not None
            parsed = dotprompt.parse(change.after)
            if change.action == "add":
                agent = agents.create_agent(actor=actor, environment=environment,
                                            name=change.name, **parsed.definition)
            else:
                agent = Agent.objects.get(environment=environment, name=change.name)
                agents.update_agent(actor=actor, agent=agent, **parsed.definition)
            if parsed.publish:
                version = latest_version(agent)
                stored = Agent.objects.get(pk=agent.pk).definition()  # as jsonb keeps it
                if version is None or version.content_hash != agents.content_hash(stored):
                    agents.publish_agent(actor=actor, agent=agent, note="environment bundle")


KIND = register(AgentsKind())
