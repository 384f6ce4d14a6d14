"""Checks an agent definition against its environment, naming each bad field and why.

Used by the agent services (create, update, publish) and by dotprompt import, so the console,
the API, bundles and dotprompt files accept exactly the same definitions.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from typing import Any

import jsonschema
from django.core.exceptions import ValidationError
from django.db import models

from station.agents.models import DEFINITION_FIELDS, Agent, agent_name_validator
from station.core.errors import InvalidInput, StationError
from station.providers.models import ModelProvider
from station.tools.models import McpServer, Tool
from tenants.models import Environment

# (smallest, largest) for each limit: large enough for real work, small enough that one
# misconfigured agent cannot hold a worker for a day or burn a budget in one run.
LIMITS: dict[str, tuple[int, int]] = {
    "max_steps": (1, 500),
    "max_tokens": (1, 10_000_000),
    "max_seconds": (1, 86_400),
}
MAX_DESCRIPTION = 500
MAX_INSTRUCTIONS = 100_000
MAX_MODEL = 200
MAX_TOOLS = 200
JSON_SCHEMA_VALIDATOR = jsonschema.Draft202012Validator


def validator_class(schema: dict[str, Any]) -> Any:
    """The validator of the draft the schema names in `$schema` (default 2020-12)."""
    return jsonschema.validators.validator_for(schema, default=JSON_SCHEMA_VALIDATOR)

Errors = dict[str, list[str]]


def defaults() -> dict[str, Any]:
    """A definition with every field at the model's default."""
    out: dict[str, Any] = {}
    for name in DEFINITION_FIELDS:
        field = Agent._meta.get_field(name)
        assert isinstance(field, models.Field)
        out[name] = field.get_default()
    return out


def raise_if_any(errors: Errors) -> None:
    if errors:
        field, messages = next(iter(errors.items()))
        raise InvalidInput(f"{field}: {messages[0]}", errors=errors)


def check_name(name: Any, errors: Errors) -> None:
    if not isinstance(name, str):
        errors.setdefault("name", []).append("Must be text.")
        return
    try:
        agent_name_validator(name)
    except ValidationError as exc:
        errors.setdefault("name", []).append(str(exc.messages[0]))


def json_problem(value: Any, path: str = "") -> str | None:
    """Where `value` stops being plain JSON (YAML dates, sets, non-text keys, NaN), or None."""
    if value is None or isinstance(value, bool | int | str):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{path or 'value'}: not a finite number"
    if isinstance(value, list):
        for index, item in enumerate(value):
            if (problem := json_problem(item, f"{path}[{index}]")) is not None:
                return problem
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{path or 'value'}: key {key!r} is not text"
            if (problem := json_problem(item, f"{path}.{key}" if path else key)) is not None:
                return problem
        return None
    return f"{path or 'value'}: {type(value).__name__} is not a JSON value (quote it)"


def _scenario_validator() -> Callable[[Any], Any] | None:
    """The scripted provider's scenario check, once the providers app exposes it."""
    try:
        module = importlib.import_module("station.providers.scripted")
    except ImportError:
        return None
    return getattr(module, "validate_scenario", None)


def _check_scenario(scenario: Any, errors: Errors) -> None:
    validate = _scenario_validator()
    if validate is None:
        return
    try:
        validate(scenario)
    except StationError as exc:
        messages = [m for ms in exc.errors.values() for m in ms] or [exc.detail]
        errors.setdefault("parameters", []).extend(
            m if m.startswith("scenario") else f"scenario: {m}" for m in messages)
    except (ValueError, TypeError) as exc:
        errors.setdefault("parameters", []).append(f"scenario: {exc}")


def _check_text(definition: dict[str, Any], errors: Errors) -> None:
    for field, limit, required in (("description", MAX_DESCRIPTION, False),
                                   ("instructions", MAX_INSTRUCTIONS, False),
                                   ("model", MAX_MODEL, True)):
        value = definition[field]
        if not isinstance(value, str):
            errors.setdefault(field, []).append("Must be text.")
        elif required and not value.strip():
            errors.setdefault(field, []).append("Required: the model's name on the provider, "
                                                "e.g. gpt-4o-mini.")
        elif len(value) > limit:
            errors.setdefault(field, []).append(f"At most {limit} characters.")


def _check_provider(environment: Environment, definition: dict[str, Any],
                    errors: Errors) -> ModelProvider | None:
    name = definition["provider"]
    if not isinstance(name, str) or not name.strip():
        errors.setdefault("provider", []).append(
            f"Required: the name of a model provider connection in {environment.slug}.")
        return None
    provider = ModelProvider.objects.filter(environment=environment, name=name).first()
    if provider is None:
        known = list(ModelProvider.objects.filter(environment=environment)
                     .order_by("name").values_list("name", flat=True))
        hint = f" (known: {', '.join(known)})" if known else " (none is configured yet)"
        errors.setdefault("provider", []).append(
            f"No model provider named {name!r} in {environment.slug}{hint}.")
    return provider


def _check_parameters(provider: ModelProvider | None, definition: dict[str, Any],
                      errors: Errors) -> None:
    parameters = definition["parameters"]
    if not isinstance(parameters, dict):
        errors.setdefault("parameters", []).append(
            "Must be a JSON object of model settings, e.g. {\"temperature\": 0.2}.")
        return
    if (problem := json_problem(parameters)) is not None:
        errors.setdefault("parameters", []).append(problem)
        return
    # The scripted provider replays parameters.scenario; its own module knows the shape.
    if provider is not None and provider.kind == ModelProvider.SCRIPTED \
            and "scenario" in parameters:
        _check_scenario(parameters["scenario"], errors)


def _check_tools(environment: Environment, definition: dict[str, Any], errors: Errors) -> None:
    tools = definition["allowed_tools"]
    if not isinstance(tools, list) or not all(isinstance(t, str) for t in tools):
        errors.setdefault("allowed_tools", []).append(
            "Must be a list of \"server/tool\" names.")
        return
    if len(tools) > MAX_TOOLS:
        errors.setdefault("allowed_tools", []).append(f"At most {MAX_TOOLS} tools.")
        return
    servers = {s.name: s for s in McpServer.objects.filter(environment=environment)}
    found = {(t.server.name, t.name): t for t in Tool.objects.select_related("server")
             .filter(server__environment=environment)}
    seen: set[str] = set()
    for entry in tools:
        server, sep, tool = entry.partition("/")
        problem = None
        if entry in seen:
            problem = "listed twice"
        elif not sep or not server or not tool:
            problem = "write it as server/tool, e.g. clock/get_current_time"
        elif tool == "*":
            problem = "allow each tool by name; wildcards are for tool policies only"
        elif server not in servers:
            problem = f"no MCP server named {server!r} in {environment.slug}"
        elif (server, tool) not in found:
            problem = (f"server {server!r} has no discovered tool {tool!r} "
                       "(discover its tools first)")
        elif found[(server, tool)].status == Tool.REMOVED:
            problem = f"server {server!r} no longer lists {tool!r}"
        seen.add(entry)
        if problem:
            errors.setdefault("allowed_tools", []).append(f"{entry}: {problem}.")


def check_input_schema(schema: Any, errors: Errors) -> None:
    if not isinstance(schema, dict):
        errors.setdefault("input_schema", []).append(
            "Must be a JSON Schema object, e.g. {\"type\": \"object\"} ({} accepts any input).")
        return
    if (problem := json_problem(schema)) is not None:
        errors.setdefault("input_schema", []).append(problem)
        return
    if "$schema" in schema and not isinstance(schema["$schema"], str):
        errors.setdefault("input_schema", []).append("$schema must be a URI (text).")
        return
    meta = validator_class(schema).META_SCHEMA
    problems = sorted(JSON_SCHEMA_VALIDATOR(meta).iter_errors(schema),
                      key=lambda e: list(e.absolute_path))
    for problem in problems[:10]:
        where = "/".join(str(p) for p in problem.absolute_path)
        errors.setdefault("input_schema", []).append(
            f"Not a valid JSON Schema at {'/' + where if where else 'the top level'}: "
            f"{problem.message}")


def _check_limits(definition: dict[str, Any], errors: Errors) -> None:
    for field, (low, high) in LIMITS.items():
        value = definition[field]
        if isinstance(value, bool) or not isinstance(value, int):
            errors.setdefault(field, []).append("Must be a whole number.")
        elif not low <= value <= high:
            errors.setdefault(field, []).append(f"Must be between {low} and {high:,}.")


def check_portable(definition: dict[str, Any], errors: Errors | None = None) -> Errors:
    """The problems that do not depend on an environment (text, JSON shapes, schema,
    limits): what a bundle can be checked for before it is applied anywhere."""
    errors = {} if errors is None else errors
    _check_text(definition, errors)
    if not isinstance(definition["parameters"], dict):
        errors.setdefault("parameters", []).append(
            "Must be a JSON object of model settings, e.g. {\"temperature\": 0.2}.")
    elif (problem := json_problem(definition["parameters"])) is not None:
        errors.setdefault("parameters", []).append(problem)
    check_input_schema(definition["input_schema"], errors)
    _check_limits(definition, errors)
    return errors


def check_definition(environment: Environment, definition: dict[str, Any],
                     errors: Errors | None = None) -> Errors:
    """Every problem of a complete definition (all DEFINITION_FIELDS), by field."""
    errors = {} if errors is None else errors
    _check_text(definition, errors)
    provider = _check_provider(environment, definition, errors)
    _check_parameters(provider, definition, errors)
    _check_tools(environment, definition, errors)
    check_input_schema(definition["input_schema"], errors)
    _check_limits(definition, errors)
    return errors


def validate_definition(environment: Environment, definition: dict[str, Any]) -> None:
    raise_if_any(check_definition(environment, definition))
