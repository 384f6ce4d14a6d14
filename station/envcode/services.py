"""Export, apply and promote environments (STYLE.md §1: permission, writes and audit in one
transaction). Every write goes through the owning app's service functions, which record their
own per-change audit events; these functions add one summary event per apply or promotion."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from audit import services as audit
from station.core.errors import InvalidInput
from station.envcode.bundle import (
    FORMAT_VERSION,
    MANIFEST,
    Errors,
    check_files,
    dump_yaml,
    load_yaml,
)
from station.envcode.kinds import KINDS, Change, Kind, kind_for
from tenants.authz import Principal, authorize
from tenants.models import Environment

MANIFEST_HEADER = ("# Station environment bundle. Apply it with\n"
                   "#   station env apply DIR --to ORG/ENV [--dry-run] [--prune]\n"
                   "# `source` is informational: where this bundle was exported from.\n")


@dataclass
class Bundle:
    """A parsed, validated bundle: the desired state of each kind it carries."""

    desired: dict[str, Any]
    source: dict[str, str] = field(default_factory=dict)


@dataclass
class Plan:
    """The changes that make a target environment match a bundle or a source environment."""

    environment: Environment
    changes: list[Change]
    source: str = ""
    prune: bool = False
    applied: bool = False

    @property
    def actionable(self) -> list[Change]:
        return [c for c in self.changes if c.action != "missing"]

    @property
    def missing(self) -> list[Change]:
        return [c for c in self.changes if c.action == "missing"]

    @property
    def empty(self) -> bool:
        return not self.actionable

    def summary(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for change in self.changes:
            counts = out.setdefault(change.kind, {})
            counts[change.action] = counts.get(change.action, 0) + 1
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "environment": {"id": str(self.environment.pk), "slug": self.environment.slug},
            "source": self.source,
            "prune": self.prune,
            "applied": self.applied,
            "empty": self.empty,
            "summary": self.summary(),
            "changes": [c.as_dict() for c in self.actionable],
            "missing": [c.as_dict() for c in self.missing],
        }

    def audit_changes(self) -> dict[str, Any]:
        names: dict[str, dict[str, list[str]]] = {}
        for change in self.changes:
            names.setdefault(change.kind, {}).setdefault(change.action, []).append(change.name)
        return {"environment": self.environment.slug, "source": self.source,
                "prune": self.prune, "summary": self.summary(), "names": names}


# --- export ---------------------------------------------------------------------------------


def export_bundle(*, actor: Principal, environment: Environment) -> dict[str, str]:
    """The environment as `{path: text}` (manifest first, then sorted by path); needs every
    kind's read permission on the environment."""
    for kind in KINDS.values():
        authorize(actor, kind.read_permission, environment.organization_id, environment)
    manifest = {
        "format_version": FORMAT_VERSION,
        "source": {"organization": environment.organization.slug,
                   "environment": environment.slug},
    }
    files: dict[str, str] = {}
    for kind in KINDS.values():
        files.update(kind.export(environment))
    return {MANIFEST: dump_yaml(manifest, MANIFEST_HEADER), **dict(sorted(files.items()))}


# --- parse ----------------------------------------------------------------------------------


def _parse_manifest(text: str | None, errors: Errors) -> dict[str, str]:
    if text is None:
        errors.add(MANIFEST, f"missing: every bundle starts with {MANIFEST} "
                   f"(format_version: {FORMAT_VERSION})")
        return {}
    ok, doc = load_yaml(MANIFEST, text, errors)
    if not ok:
        return {}
    if not isinstance(doc, dict):
        errors.add(MANIFEST, "must be a mapping with format_version and source")
        return {}
    for key in sorted(set(doc) - {"format_version", "source"}, key=str):
        errors.add(MANIFEST, "unknown field (known: format_version, source)", entry=str(key))
    version = doc.get("format_version")
    if version is None:
        errors.add(MANIFEST, "required", entry="format_version")
    elif isinstance(version, bool) or not isinstance(version, int):
        errors.add(MANIFEST, "must be a whole number", entry="format_version")
    elif version != FORMAT_VERSION:
        errors.add(MANIFEST, f"version {version} is not supported (this server reads "
                   f"{FORMAT_VERSION})", entry="format_version")
    source = doc.get("source")
    if source is None:
        return {}
    if not isinstance(source, dict):
        errors.add(MANIFEST, "must be a mapping of organization and environment",
                   entry="source")
        return {}
    clean: dict[str, str] = {}
    for key, value in source.items():
        if key not in ("organization", "environment"):
            errors.add(MANIFEST, "unknown field (known: organization, environment)",
                       entry=f"source.{key}")
        elif not isinstance(value, str):
            errors.add(MANIFEST, "must be text", entry=f"source.{key}")
        else:
            clean[key] = value
    return clean


def parse_bundle(files: Mapping[Any, Any]) -> Bundle:
    """Validate a whole bundle; raises InvalidInput naming every problem (file and entry)."""
    errors = Errors()
    clean = check_files(files, errors)
    source = _parse_manifest(clean.get(MANIFEST), errors)
    by_kind: dict[str, dict[str, str]] = {}
    for path, text in clean.items():
        if path == MANIFEST:
            continue
        kind = kind_for(path)
        if kind is None:
            known = ", ".join([MANIFEST, *(k.files_hint for k in KINDS.values())])
            errors.add(path, f"unknown file (a bundle holds: {known})")
            continue
        by_kind.setdefault(kind.name, {})[path] = text
    desired: dict[str, Any] = {}
    for name, kind_files in by_kind.items():
        state = KINDS[name].parse(kind_files, errors)
        if state is not None:
            desired[name] = state
    errors.raise_if_any()
    return Bundle(desired=desired, source=source)


# --- plan and apply -------------------------------------------------------------------------


def _kinds_named(names: Iterable[str] | None) -> list[Kind]:
    if names is None:
        return list(KINDS.values())
    names = list(names)
    unknown = sorted(set(names) - set(KINDS))
    if unknown:
        raise InvalidInput.field("kinds", f"Unknown kinds {', '.join(unknown)} "
                                 f"(known: {', '.join(KINDS)}).")
    return [kind for name, kind in KINDS.items() if name in names]


def _lock(environment: Environment) -> None:
    # Serializes applies and promotions into one environment; NO KEY UPDATE does not block
    # rows that merely reference the environment.
    Environment.objects.select_for_update(no_key=True).filter(pk=environment.pk).first()


def _apply(plan: Plan, kinds: list[Kind], *, actor: Principal) -> None:
    env = plan.environment
    for kind in kinds:  # every permission first: refuse before the first write
        if any(c.kind == kind.name for c in plan.actionable):
            authorize(actor, kind.write_permission, env.organization_id, env)
    for kind in kinds:
        kind.apply([c for c in plan.actionable if c.kind == kind.name], actor=actor,
                   environment=env)
    plan.applied = True


def apply_bundle(*, actor: Principal, environment: Environment, files: Mapping[Any, Any],
                 prune: bool = False, dry_run: bool = False) -> Plan:
    """Make `environment` match the bundle, in one transaction, or (dry run) say how.

    Kinds absent from the bundle are left alone. Things absent from a kind's file are removed
    only with `prune`. Secrets are never created: values do not travel in bundles."""
    bundle = parse_bundle(files)
    kinds = [KINDS[name] for name in KINDS if name in bundle.desired]
    for kind in kinds:
        authorize(actor, kind.read_permission, environment.organization_id, environment)
    source = "/".join(bundle.source.get(k, "?") for k in ("organization", "environment")) \
        if bundle.source else ""
    with transaction.atomic():
        if not dry_run:
            _lock(environment)
        changes = [change for kind in kinds for change in
                   kind.diff(bundle.desired[kind.name], kind.current(environment), prune=prune)]
        plan = Plan(environment=environment, changes=changes, source=source, prune=prune)
        if dry_run or plan.empty:
            return plan
        _apply(plan, kinds, actor=actor)
        audit.record("environment.bundle_applied", actor=actor, target=environment,
                     environment_id=environment.pk, changes=plan.audit_changes())
    return plan


def promote(*, actor: Principal, source: Environment, target: Environment,
            kinds: Iterable[str] | None = None, dry_run: bool = False) -> Plan:
    """Bring the names of `source` into `target`: new variables are created empty and flagged
    "needs a value in target"; target values are never overwritten; missing secrets are
    reported. Needs each kind's read permission on both environments, and the write
    permission of every kind with changes on the target."""
    if source.pk == target.pk:
        raise InvalidInput.field("source", "Source and target are the same environment.")
    chosen = _kinds_named(kinds)
    for kind in chosen:
        authorize(actor, kind.read_permission, source.organization_id, source)
        authorize(actor, kind.read_permission, target.organization_id, target)
    with transaction.atomic():
        if not dry_run:
            _lock(target)
        changes = [change for kind in chosen
                   for change in kind.promote(kind.current(source), kind.current(target))]
        plan = Plan(environment=target, changes=changes, source=source.slug)
        if dry_run or plan.empty:
            return plan
        _apply(plan, chosen, actor=actor)
        audit.record("environment.promoted", actor=actor, target=target,
                     environment_id=target.pk, changes=plan.audit_changes())
    return plan
