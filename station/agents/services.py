"""Writes for agents and their versions (STYLE.md §1: authorize, write, audit), plus the
check of a run's input against a version's input schema.

The working copy (`Agent`) is edited freely; `publish_agent` freezes its definition into an
immutable `AgentVersion` identified by the SHA-256 of the definition's canonical JSON. Runs
always point at a version, so editing the working copy never changes a run in flight.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from django.db import transaction
from django.utils import timezone

from audit import services as audit
from station.agents.models import DEFINITION_FIELDS, Agent, AgentVersion
from station.agents.selectors import latest_version
from station.agents.validation import (
    check_definition,
    check_name,
    defaults,
    json_problem,
    raise_if_any,
)
from station.core.errors import Conflict, InvalidInput
from tenants.authz import Principal, authorize
from tenants.models import Environment

__all__ = ["content_hash", "create_agent", "delete_agent", "import_agent", "latest_version",
           "publish_agent", "update_agent", "validate_input"]

MAX_NOTE = 500


def canonical_json(definition: dict[str, Any]) -> str:
    return json.dumps(definition, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_hash(definition: dict[str, Any]) -> str:
    """SHA-256 of the definition's canonical JSON (sorted keys, no spaces, UTF-8)."""
    return hashlib.sha256(canonical_json(definition).encode()).hexdigest()


def _pick(fields: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(fields) - set(DEFINITION_FIELDS))
    if unknown:
        raise InvalidInput(f"Unknown agent fields: {', '.join(unknown)}.",
                           errors={name: ["Unknown field."] for name in unknown})
    # Deep copies: a caller's later edit of its dict must not reach a stored definition.
    return {name: copy.deepcopy(value) for name, value in fields.items()}


def _new_agent(environment: Environment, name: Any, definition: dict[str, Any]) -> Agent:
    errors: dict[str, list[str]] = {}
    check_name(name, errors)
    raise_if_any(check_definition(environment, definition, errors))
    if Agent.objects.filter(environment=environment, name=name).exists():
        raise Conflict(f"An agent named {name!r} exists in {environment.slug}.",
                       errors={"name": ["Taken in this environment."]})
    return Agent.objects.create(environment=environment, name=name, **definition)


@transaction.atomic
def create_agent(*, actor: Principal, environment: Environment, name: str,
                 **fields: Any) -> Agent:
    authorize(actor, "agents.write", environment.organization_id, environment)
    definition = {**defaults(), **_pick(fields)}
    agent = _new_agent(environment, name, definition)
    audit.record("agent.created", actor=actor, target=agent, environment_id=environment.pk,
                 changes={"name": name, **definition})
    return agent


def _apply_changes(agent: Agent, changes: dict[str, Any]) -> dict[str, Any]:
    """Validate and set `changes` on `agent`; returns the audit diff (empty: nothing)."""
    current = agent.definition()
    raise_if_any(check_definition(agent.environment, {**current, **changes}))
    diff = {k: audit.change(current[k], v) for k, v in changes.items() if current[k] != v}
    if diff:
        for field, value in changes.items():
            setattr(agent, field, value)
        agent.updated_at = timezone.now()
        agent.save()
    return diff


@transaction.atomic
def update_agent(*, actor: Principal, agent: Agent, **changes: Any) -> Agent:
    """Change the working copy; the audit event records each field before and after."""
    authorize(actor, "agents.write", agent.organization_id, agent.environment)
    diff = _apply_changes(agent, _pick(changes))
    if diff:
        audit.record("agent.updated", actor=actor, target=agent,
                     environment_id=agent.environment_id, changes=diff)
    return agent


@transaction.atomic
def delete_agent(*, actor: Principal, agent: Agent) -> None:
    """Delete an agent with its versions and finished runs; refused while a run is active."""
    from station.runs.models import Run

    authorize(actor, "agents.write", agent.organization_id, agent.environment)
    # Lock the agent row so a run started concurrently (which locks it too, or fails on
    # the foreign key once the row is gone) cannot slip in between the check and the delete.
    Agent.objects.select_for_update().filter(pk=agent.pk).first()
    active = Run.objects.filter(agent=agent, status__in=Run.ACTIVE).count()
    if active:
        raise Conflict(f"Agent {agent.name!r} has {active} run{'s' * (active != 1)} queued, "
                       "running or waiting for approval; cancel or wait for "
                       f"{'them' if active != 1 else 'it'} before deleting.")
    audit.record("agent.deleted", actor=actor, target=agent,
                 environment_id=agent.environment_id,
                 changes={"name": agent.name, "versions": agent.latest_version})
    agent.delete()


@transaction.atomic
def publish_agent(*, actor: Principal, agent: Agent, note: str = "") -> AgentVersion:
    """Freeze the working copy as the next version. Publishing a definition identical to
    the latest version is refused (409) rather than creating a duplicate."""
    authorize(actor, "agents.write", agent.organization_id, agent.environment)
    if not isinstance(note, str) or len(note) > MAX_NOTE:
        raise InvalidInput.field("note", f"Text of at most {MAX_NOTE} characters.")
    # Serialize publishes of one agent: version numbers are handed out under this lock.
    # of=self: locking the joined environment too would deadlock with run starts.
    locked = (Agent.objects.select_for_update(of=("self",)).select_related("environment")
              .get(pk=agent.pk))
    definition = json.loads(canonical_json(locked.definition()))
    # A version must be runnable as published: the provider and tools must still exist.
    raise_if_any(check_definition(locked.environment, definition))
    digest = content_hash(definition)
    previous = latest_version(locked)
    if previous is not None and previous.content_hash == digest:
        raise Conflict(f"Nothing changed since v{previous.number}: edit the agent first.")
    number = locked.latest_version + 1
    version = AgentVersion.objects.create(
        agent=locked, number=number, definition=definition, content_hash=digest,
        note=note, published_by_label=actor.label[:255])
    locked.latest_version = number
    locked.save(update_fields=["latest_version"])
    agent.latest_version = number
    audit.record("agent.published", actor=actor, target=locked,
                 environment_id=locked.environment_id,
                 changes={"version": number, "content_hash": digest, "note": note,
                          "previous": previous.number if previous else None})
    return version


@transaction.atomic
def import_agent(*, actor: Principal, environment: Environment, text: Any,
                 name: str | None = None) -> tuple[Agent, bool]:
    """Create or update the agent a dotprompt file describes; returns (agent, created).

    The file is the whole definition (a key left out means its default). The name comes
    from `name`, else from the file's `name:`. Nothing is written when anything is wrong;
    errors name the file's key and line."""
    from station.agents import dotprompt

    authorize(actor, "agents.write", environment.organization_id, environment)
    parsed = dotprompt.parse(text)
    name = name or parsed.name
    if not name:
        raise InvalidInput.field("name", "Give the agent's name, or put `name:` in the file.")
    existing = Agent.objects.select_for_update().filter(environment=environment,
                                                        name=name).first()
    try:
        if existing is None:
            agent = _new_agent(environment, name, parsed.definition)
            changes: dict[str, Any] = {"name": name, "created": True, **parsed.definition}
        else:
            agent = existing
            changes = _apply_changes(agent, parsed.definition)
            if not changes:
                return agent, False
            changes = {"name": name, "created": False, **changes}
    except InvalidInput as exc:
        errors = dotprompt.rekey(exc.errors, parsed, text)
        key, messages = next(iter(errors.items()))
        raise InvalidInput(f"The dotprompt file is invalid; nothing was changed. {key}: "
                           f"{messages[0]}", errors=errors) from exc
    audit.record("agent.imported", actor=actor, target=agent, environment_id=environment.pk,
                 changes=changes)
    return agent, existing is None


# --- run input --------------------------------------------------------------------------------


def _json_path(path: Any) -> str:
    out = "$"
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def validate_input(version: AgentVersion, data: Any) -> None:
    """Check a run's input against the version's input schema (JSON Schema 2020-12 unless
    the schema's `$schema` names another draft).

    Raises InvalidInput whose `errors` are keyed by the JSON path of each problem
    (`input`, `input.$.customer.email`), so a caller sees every problem at once."""
    from station.agents.validation import validator_class

    if (problem := json_problem(data)) is not None:
        raise InvalidInput.field("input", problem)
    schema = version.definition.get("input_schema") or {}
    cls = validator_class(schema)
    validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
    problems = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if not problems:
        return
    errors: dict[str, list[str]] = {}
    for problem in problems[:50]:
        path = _json_path(problem.absolute_path)
        key = "input" if path == "$" else f"input.{path}"
        errors.setdefault(key, []).append(problem.message)
    first_key, first = next(iter(errors.items()))
    count = sum(len(m) for m in errors.values())
    raise InvalidInput(f"The input does not match the agent's input schema ({count} "
                       f"problem{'s' * (count != 1)}); first: {first_key}: {first[0]}",
                       errors=errors)
