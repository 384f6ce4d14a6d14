"""Agents as dotprompt files: YAML front matter between `---` lines, then the prompt body.

```
---
name: triage-bot
description: Sorts support tickets
model: openai-main/gpt-4o-mini        # <provider connection>/<model>
config: {temperature: 0.2}            # parameters
tools: [clock/get_current_time]       # allowed_tools
input:
  schema: {type: object}              # input_schema (JSON Schema, not Picoschema)
metadata:
  station: {max_steps: 10, max_tokens: 100000, max_seconds: 300}
---
You are a support triage assistant.   # the body: instructions, verbatim
```

The file carries the whole definition: a key left out means the field's default. The body is
kept byte for byte (no trimming), so export → import is lossless. Parsing is strict: a safe
YAML loader that refuses duplicate keys, type checks per key, and unknown keys refused, each
problem named by its key and line. Google's `dotpromptz` package was considered and not used:
it is alpha, pulls in a native Handlebars binding, pydantic and structlog, and treats a file
without front matter as a bare template, where Station wants a refusal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

from station.agents.models import DEFINITION_FIELDS
from station.agents.validation import defaults
from station.core.errors import InvalidInput

MAX_BYTES = 512 * 1024
TOP_KEYS = ("name", "description", "model", "config", "tools", "input", "metadata")
STATION_KEYS = ("max_steps", "max_tokens", "max_seconds", "version", "content_hash", "publish")
LIMIT_KEYS = ("max_steps", "max_tokens", "max_seconds")
# Where each definition field lives in the file, for error messages.
FIELD_KEYS = {"description": "description", "instructions": "body", "provider": "model",
              "model": "model", "parameters": "config", "allowed_tools": "tools",
              "input_schema": "input.schema", "max_steps": "metadata.station.max_steps",
              "max_tokens": "metadata.station.max_tokens",
              "max_seconds": "metadata.station.max_seconds", "name": "name"}

# Optional blank or `#` comment lines, then the opening delimiter.
_OPENING = re.compile(r"\A(?:(?:#[^\n]*|[ \t]*)\r?\n)*---[ \t]*\r?\n")
_CLOSING = re.compile(r"^---[ \t]*(?:\r?\n|\Z)", re.MULTILINE)


@dataclass(frozen=True)
class Dotprompt:
    """A parsed file: the agent's name (when the file gives one) and its full definition."""

    name: str | None
    definition: dict[str, Any]
    body_line: int  # the file line where the body starts, for error messages
    # `metadata.station.publish: true`: environment bundles publish the agent after applying
    # it (a plain import never publishes).
    publish: bool = False


# --- export -----------------------------------------------------------------------------------


def _sorted(value: Any) -> Any:
    """Nested mappings with sorted keys: the database (jsonb) does not keep key order, and an
    export must not change when nothing but the storage order did."""
    if isinstance(value, dict):
        return {key: _sorted(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted(item) for item in value]
    return value


def render(name: str, definition: dict[str, Any], *, version: int | None = None,
           digest: str | None = None, publish: bool = False) -> str:
    """The dotprompt text of a definition. Deterministic: same definition, same bytes."""
    front: dict[str, Any] = {"name": name}
    if definition["description"]:
        front["description"] = definition["description"]
    front["model"] = f"{definition['provider']}/{definition['model']}"
    if definition["parameters"]:
        front["config"] = _sorted(definition["parameters"])
    if definition["allowed_tools"]:
        front["tools"] = list(definition["allowed_tools"])
    if definition["input_schema"]:
        front["input"] = {"schema": _sorted(definition["input_schema"])}
    station: dict[str, Any] = {key: definition[key] for key in LIMIT_KEYS}
    if version is not None:
        station["version"] = version
    if digest is not None:
        station["content_hash"] = digest
    if publish:
        station["publish"] = True
    front["metadata"] = {"station": station}
    text = yaml.safe_dump(front, sort_keys=False, default_flow_style=False,
                          allow_unicode=True, width=100)
    return f"---\n{text}---\n{definition['instructions']}"


# --- import -----------------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice (PyYAML would keep the last silently)."""


def _mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, str | int | float | bool) and key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} is given twice", key_node.start_mark)
        if isinstance(key, str | int | float | bool):
            seen.add(key)
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


class _Problems:
    """Problems keyed by dotprompt key, each message prefixed with its file line."""

    def __init__(self, root: yaml.Node | None, line_offset: int) -> None:
        self.root = root
        self.offset = line_offset
        self.by_key: dict[str, list[str]] = {}

    def line(self, key: str) -> int | None:
        node, key_node = self.root, None
        for part in key.split("."):
            if not isinstance(node, yaml.MappingNode):
                return None
            pair = next(((k, v) for k, v in node.value
                         if isinstance(k, yaml.ScalarNode) and k.value == part), None)
            if pair is None:
                return None
            key_node, node = pair
        return None if key_node is None else self.offset + key_node.start_mark.line + 1

    def add(self, key: str, message: str, line: int | None = None) -> None:
        line = line if line is not None else self.line(key)
        prefix = f"line {line}: " if line is not None else ""
        self.by_key.setdefault(key, []).append(prefix + message)

    def raise_if_any(self) -> None:
        if self.by_key:
            key, messages = next(iter(self.by_key.items()))
            raise InvalidInput(f"The dotprompt file is invalid; nothing was changed. {key}: "
                               f"{messages[0]}", errors=self.by_key)


def _split(text: str) -> tuple[str, str, int, int]:
    """(front matter, body, line of the first front-matter line, line where the body
    starts), or InvalidInput when there is no front matter."""
    opening = _OPENING.match(text)
    if opening is None:
        raise InvalidInput.field(
            "front matter", "line 1: a dotprompt file starts with a `---` line, the YAML front "
            "matter (model, config, tools, …), and another `---` line before the prompt.")
    closing = _CLOSING.search(text, opening.end())
    if closing is None:
        raise InvalidInput.field("front matter", "the front matter is never closed: add a "
                                 "`---` line between it and the prompt.")
    first_line = text.count("\n", 0, opening.end()) + 1
    body_line = text.count("\n", 0, closing.end()) + 1
    return text[opening.end():closing.start()], text[closing.end():], first_line, body_line


def _type_name(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def _load_front(front: str, first_line: int) -> tuple[Any, yaml.Node | None]:
    try:
        root = yaml.compose(front, Loader=yaml.SafeLoader)
        doc = yaml.load(front, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {first_line + mark.line}: " if mark is not None else ""
        raise InvalidInput.field("front matter", f"{where}YAML error: {exc.problem or exc}"
                                 ) from exc
    except yaml.YAMLError as exc:
        raise InvalidInput.field("front matter", f"YAML error: {exc}") from exc
    return doc, root


def _check_metadata(doc: dict[str, Any], out: dict[str, Any], problems: _Problems) -> bool:
    """Reads the limits into `out`; returns the `publish` flag."""
    metadata = doc.get("metadata")
    if metadata is None and "metadata" not in doc:
        return False
    if not isinstance(metadata, dict):
        problems.add("metadata", f"must be a mapping with `station`, got {_type_name(metadata)}")
        return False
    for key in sorted(set(metadata) - {"station"}, key=str):
        problems.add(f"metadata.{key}", "unknown key (known: station)")
    station = metadata.get("station", {})
    if not isinstance(station, dict):
        problems.add("metadata.station", "must be a mapping of max_steps, max_tokens, "
                     f"max_seconds, got {_type_name(station)}")
        return False
    for key in sorted(set(station) - set(STATION_KEYS), key=str):
        problems.add(f"metadata.station.{key}",
                     f"unknown key (known: {', '.join(STATION_KEYS)})")
    for key in LIMIT_KEYS:
        if key in station:
            value = station[key]
            if isinstance(value, bool) or not isinstance(value, int):
                problems.add(f"metadata.station.{key}",
                             f"must be a whole number, got {_type_name(value)}")
            else:
                out[key] = value
    publish = station.get("publish", False)
    if not isinstance(publish, bool):
        problems.add("metadata.station.publish", f"must be true or false, got "
                                                 f"{_type_name(publish)}")
        return False
    return publish


def _check_keys(doc: dict[str, Any], out: dict[str, Any], problems: _Problems) -> bool:
    for key in sorted(set(doc) - set(TOP_KEYS), key=str):
        problems.add(str(key), f"unknown key (known: {', '.join(TOP_KEYS)})")
    for key, field in (("description", "description"),):
        if key in doc:
            if isinstance(doc[key], str):
                out[field] = doc[key]
            else:
                problems.add(key, f"must be text, got {_type_name(doc[key])}")
    model = doc.get("model")
    if not isinstance(model, str) or "/" not in model:
        problems.add("model", "required: <provider>/<model>, e.g. openai-main/gpt-4o-mini"
                     + (f" (got {_type_name(model)})" if not isinstance(model, str) else ""))
    else:
        out["provider"], _, out["model"] = model.partition("/")
    if "config" in doc:
        if isinstance(doc["config"], dict):
            out["parameters"] = doc["config"]
        else:
            problems.add("config", f"must be a mapping of model settings, got "
                                   f"{_type_name(doc['config'])}")
    if "tools" in doc:
        tools = doc["tools"]
        if isinstance(tools, list) and all(isinstance(t, str) for t in tools):
            out["allowed_tools"] = tools
        else:
            problems.add("tools", "must be a list of server/tool names")
    if "input" in doc:
        spec = doc["input"]
        if not isinstance(spec, dict):
            problems.add("input", f"must be a mapping with `schema`, got {_type_name(spec)}")
        else:
            for key in sorted(set(spec) - {"schema"}, key=str):
                problems.add(f"input.{key}", "unknown key (known: schema)")
            if "schema" in spec:
                out["input_schema"] = spec["schema"]
    return _check_metadata(doc, out, problems)


def parse(text: Any) -> Dotprompt:
    """Parse a dotprompt file into a full definition. Checks shape and types only; the
    environment (provider, tools) is checked by the services that write it."""
    if not isinstance(text, str):
        raise InvalidInput.field("dotprompt", "Must be the text of a .prompt file.")
    if len(text.encode()) > MAX_BYTES:
        raise InvalidInput.field("dotprompt", f"Larger than {MAX_BYTES // 1024} KiB.")
    front, body, first_line, body_line = _split(text)
    doc, root = _load_front(front, first_line)
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise InvalidInput.field("front matter", f"line {first_line}: must be a mapping of "
                                 f"keys ({', '.join(TOP_KEYS)}), got {_type_name(doc)}")
    problems = _Problems(root, first_line - 1)
    out: dict[str, Any] = {"instructions": body}
    publish = _check_keys(doc, out, problems)
    name = doc.get("name")
    if name is not None and not isinstance(name, str):
        problems.add("name", f"must be text, got {_type_name(name)}")
        name = None
    problems.raise_if_any()
    definition = {**defaults(), **out}
    assert set(definition) == set(DEFINITION_FIELDS)
    return Dotprompt(name=name, definition=definition, body_line=body_line, publish=publish)


def rekey(errors: dict[str, list[str]], parsed: Dotprompt, text: str) -> dict[str, list[str]]:
    """Service errors (by agent field) as dotprompt keys with their lines."""
    front, _, first_line, _ = _split(text)
    root = yaml.compose(front, Loader=yaml.SafeLoader)
    problems = _Problems(root, first_line - 1)
    for field, messages in errors.items():
        key = FIELD_KEYS.get(field, field)
        line = parsed.body_line if key == "body" else None
        for message in messages:
            problems.add(key, message, line)
    return problems.by_key
