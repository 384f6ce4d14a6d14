"""The registry of resource kinds an environment bundle carries.

A kind owns some paths of the bundle (`variables.yaml`; later e.g. `agents/*.prompt`), and
knows how to export its resources, parse and validate its files, read an environment's current
state, compute the changes between two states, and apply them through its app's services.
Agents, MCP servers, tool policies and schedules plug in by subclassing `Kind` and calling
`register()`; export, apply, promotion, the API, the CLI and the console pick them up.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from django.core.exceptions import ValidationError

from station.envcode.bundle import Errors, dump_yaml, load_yaml
from station.vault import services as vault
from station.vault.models import Secret, Variable, name_validator
from tenants.authz import Principal
from tenants.models import Environment
from tenants.permissions import check_permission_name

Action = Literal["add", "change", "remove", "missing"]


@dataclass(frozen=True)
class Change:
    """One difference. `missing` is a notice, never applied (e.g. a secret whose value has to
    be set in the target by hand); the others are applied by `Kind.apply`."""

    kind: str
    name: str
    action: Action
    before: str | None = None
    after: str | None = None
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "action": self.action,
                "before": self.before, "after": self.after, "note": self.note}


class Kind(ABC):
    name: ClassVar[str]  # "variables"; also the key of the registry
    label: ClassVar[str]  # "Variables", for people
    files_hint: ClassVar[str]  # the paths it owns, for error messages: "variables.yaml"
    read_permission: ClassVar[str]
    write_permission: ClassVar[str]

    @abstractmethod
    def owns(self, path: str) -> bool:
        """Whether a bundle path belongs to this kind."""

    @abstractmethod
    def export(self, environment: Environment) -> dict[str, str]:
        """This kind's files for `environment`, `{path: text}`, deterministic."""

    @abstractmethod
    def parse(self, files: dict[str, str], errors: Errors) -> Any:
        """The desired state from this kind's files (only the ones it owns are passed), or
        None when the bundle has none of them (the bundle does not manage this kind)."""

    @abstractmethod
    def current(self, environment: Environment) -> Any:
        """The environment's state, in the shape `parse` returns."""

    @abstractmethod
    def diff(self, desired: Any, current: Any, *, prune: bool) -> list[Change]:
        """What applying `desired` onto `current` changes (removals only with `prune`)."""

    @abstractmethod
    def promote(self, source: Any, target: Any) -> list[Change]:
        """What promoting from a source state to a target state changes."""

    @abstractmethod
    def apply(self, changes: list[Change], *, actor: Principal, environment: Environment) -> None:
        """Make `changes` (never `missing` ones) through the app's service functions."""


def load_mapping(path: str, files: dict[str, str], errors: Errors,
                 not_a_mapping: str) -> dict[Any, Any] | None:
    """The YAML mapping a one-file kind keeps in `path` (`{}` for an empty file). None when
    the bundle has no such file (the kind is not managed) or it is not a mapping (then the
    error `not_a_mapping`, saying the shape expected, is added for the file)."""
    if path not in files:
        return None
    ok, doc = load_yaml(path, files[path], errors)
    if not ok:
        return None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        errors.add(path, not_a_mapping)
        return None
    return doc


KINDS: dict[str, Kind] = {}


def register(kind: Kind) -> Kind:
    check_permission_name(kind.read_permission)
    check_permission_name(kind.write_permission)
    if kind.name in KINDS:
        raise ValueError(f"Bundle kind {kind.name!r} is registered twice.")
    KINDS[kind.name] = kind
    return kind


def kind_for(path: str) -> Kind | None:
    return next((k for k in KINDS.values() if k.owns(path)), None)


def _name_error(name: object) -> str | None:
    if not isinstance(name, str):
        return "names are text"
    try:
        name_validator(name)
    except ValidationError as exc:
        return str(exc.messages[0])
    return None


# --- variables ------------------------------------------------------------------------------


class VariablesKind(Kind):
    """`variables.yaml`: a mapping `NAME: value`. Values are plain configuration and travel."""

    name = "variables"
    label = "Variables"
    read_permission = "variables.read"
    write_permission = "variables.write"
    path = "variables.yaml"
    files_hint = path
    header = "# Environment variables: NAME: value (values are text; quote numbers).\n"

    def owns(self, path: str) -> bool:
        return path == self.path

    def export(self, environment: Environment) -> dict[str, str]:
        return {self.path: dump_yaml(self.current(environment), self.header)}

    def parse(self, files: dict[str, str], errors: Errors) -> dict[str, str] | None:
        doc = load_mapping(self.path, files, errors,
                           "must be a mapping of NAME: value")
        if doc is None:
            return None
        out: dict[str, str] = {}
        for key, value in doc.items():
            if (problem := _name_error(key)) is not None:
                errors.add(self.path, f"invalid name: {problem}", entry=str(key))
            elif not isinstance(value, str):
                kind = "empty" if value is None else type(value).__name__
                errors.add(self.path, f"value must be text, got {kind}; quote it "
                           "(e.g. \"8080\", \"true\", \"\")", entry=key)
            elif len(value) > vault.MAX_VALUE_BYTES:
                errors.add(self.path, f"value longer than {vault.MAX_VALUE_BYTES // 1024} KiB",
                           entry=key)
            else:
                out[key] = value
        return out

    def current(self, environment: Environment) -> dict[str, str]:
        return dict(Variable.objects.filter(environment=environment).order_by("name")
                    .values_list("name", "value"))

    def diff(self, desired: dict[str, str], current: dict[str, str], *,
             prune: bool) -> list[Change]:
        changes = []
        for name in sorted(set(desired) | set(current)):
            if name not in current:
                changes.append(Change(self.name, name, "add", after=desired[name]))
            elif name not in desired:
                if prune:
                    changes.append(Change(self.name, name, "remove", before=current[name]))
            elif desired[name] != current[name]:
                changes.append(Change(self.name, name, "change", before=current[name],
                                      after=desired[name]))
        return changes

    def promote(self, source: dict[str, str], target: dict[str, str]) -> list[Change]:
        # Names travel, values do not: each environment keeps (or gets) its own value.
        return [Change(self.name, name, "add", after="", note="needs a value in target")
                for name in sorted(set(source) - set(target))]

    def apply(self, changes: list[Change], *, actor: Principal, environment: Environment) -> None:
        for change in changes:
            if change.action in ("add", "change"):
                assert change.after is not None
                vault.set_variable(actor=actor, environment=environment, name=change.name,
                                   value=change.after)
            elif change.action == "remove":
                variable = Variable.objects.get(environment=environment, name=change.name)
                vault.delete_variable(actor=actor, variable=variable)


# --- secrets --------------------------------------------------------------------------------

MISSING_SECRET = "missing value — set it before use"  # noqa: S105 - a message, not a secret


class SecretsKind(Kind):
    """`secrets.yaml`: the list of secret names the environment needs. Values never leave
    the vault, so a name missing in the target is reported, not created."""

    name = "secrets"
    label = "Secrets"
    read_permission = "secrets.read"
    write_permission = "secrets.write"
    path = "secrets.yaml"
    files_hint = path
    header = ("# Secret names only: values never leave the vault. Set each value in every\n"
              "# environment through the console or the API.\n")

    def owns(self, path: str) -> bool:
        return path == self.path

    def export(self, environment: Environment) -> dict[str, str]:
        return {self.path: dump_yaml(self.current(environment), self.header)}

    def parse(self, files: dict[str, str], errors: Errors) -> list[str] | None:
        if self.path not in files:
            return None
        ok, doc = load_yaml(self.path, files[self.path], errors)
        if not ok:
            return None
        if doc is None:
            return []
        if not isinstance(doc, list):
            errors.add(self.path, "must be a list of secret names (values never go in a bundle)")
            return None
        out: list[str] = []
        for index, item in enumerate(doc):
            if (problem := _name_error(item)) is not None:
                errors.add(self.path, f"invalid name: {problem}",
                           entry=item if isinstance(item, str) else f"[{index}]")
            elif item in out:
                errors.add(self.path, "listed twice; each name may appear once", entry=item)
            else:
                out.append(item)
        return sorted(out)

    def current(self, environment: Environment) -> list[str]:
        return list(Secret.objects.filter(environment=environment).order_by("name")
                    .values_list("name", flat=True))

    def diff(self, desired: list[str], current: list[str], *, prune: bool) -> list[Change]:
        changes = [Change(self.name, name, "missing", note=MISSING_SECRET)
                   for name in sorted(set(desired) - set(current))]
        if prune:
            changes += [Change(self.name, name, "remove")
                        for name in sorted(set(current) - set(desired))]
        return changes

    def promote(self, source: list[str], target: list[str]) -> list[Change]:
        return [Change(self.name, name, "missing", note=MISSING_SECRET)
                for name in sorted(set(source) - set(target))]

    def apply(self, changes: list[Change], *, actor: Principal, environment: Environment) -> None:
        for change in changes:
            if change.action == "remove":
                secret = Secret.objects.get(environment=environment, name=change.name)
                vault.delete_secret(actor=actor, secret=secret)


register(VariablesKind())
register(SecretsKind())

# Kinds defined by other modules register themselves on import, in apply order: policies
# name MCP servers, agents name providers and tools, so they come after both. (A loop, not
# import statements, so import sorting cannot reorder them.)
for _module in ("kind_mcp_servers", "kind_providers", "kind_tool_policies", "kind_agents",
                "kind_schedules"):
    importlib.import_module(f"station.envcode.{_module}")
