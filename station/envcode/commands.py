"""`station env export|apply`: the operator's side of environments as code.

Called from station.cli after Django is set up. The actor is the platform operator
(`Principal.system`), like the other `station` commands; every change is audited as such.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

from station.core.errors import StationError
from station.envcode import services
from station.envcode.bundle import MANIFEST, read_dir, write_dir
from station.envcode.kinds import kind_for
from station.envcode.services import Plan
from tenants import platform
from tenants.authz import Principal
from tenants.context import org_scope
from tenants.models import Environment

ACTOR_LABEL = "station env"

_SYMBOL = {"add": "+", "change": "~", "remove": "-", "missing": "!"}


def _err(message: str) -> None:
    print(f"station: {message}", file=sys.stderr)


def _split_target(target: str) -> tuple[str, str] | None:
    org, sep, env = target.partition("/")
    return (org, env) if sep and org and env and "/" not in env else None


def _quote(value: str | None) -> str:
    return "" if value is None else repr(value) if len(value) <= 60 else repr(value[:57] + "...")


def render(plan: Plan, *, dry_run: bool) -> str:
    """The plan as people read it: one line per change, grouped by kind."""
    where = f"{plan.environment.organization.slug}/{plan.environment.slug}"
    lines = [f"Changes to {where}" + (f" from {plan.source}" if plan.source else "")
             + (" (prune)" if plan.prune else "") + ":"]
    kinds = sorted({c.kind for c in plan.changes})
    for kind in kinds:
        lines.append(f"  {kind}")
        for c in (c for c in plan.changes if c.kind == kind):
            text = f"    {_SYMBOL[c.action]} {c.name}"
            if c.action == "add" and c.after is not None:
                text += f" = {_quote(c.after)}"
            elif c.action == "change":
                text += f": {_quote(c.before)} -> {_quote(c.after)}"
            if c.note:
                text += f"  ({c.note})"
            lines.append(text)
    if not plan.changes:
        lines.append("  (none)")
    count = len(plan.actionable)
    if plan.empty:
        lines.append("Nothing to change.")
    elif dry_run:
        lines.append(f"Dry run: {count} change{'s' * (count != 1)} would be made; nothing "
                     "was changed.")
    else:
        lines.append(f"Applied {count} change{'s' * (count != 1)}.")
    if plan.missing:
        n = len(plan.missing)
        lines.append(f"{n} secret{'s need' if n != 1 else ' needs'} a value in this "
                     "environment before use.")
    return "\n".join(lines)


def _environment(target: str) -> tuple[uuid.UUID, str] | str:
    parts = _split_target(target)
    if parts is None:
        return f"expected ORG/ENV, got {target!r}."
    org = platform.org_by_slug(parts[0])
    if org is None:
        return f"no organization {parts[0]!r}."
    return org.id, parts[1]


def export(target: str, directory: str) -> int:
    found = _environment(target)
    if isinstance(found, str):
        _err(found)
        return 1
    org_id, env_slug = found
    try:
        with org_scope(org_id):
            env = Environment.objects.select_related("organization").filter(
                slug=env_slug).first()
            if env is None:
                _err(f"no environment {env_slug!r} in {target.partition('/')[0]}.")
                return 1
            files = services.export_bundle(actor=Principal.system(ACTOR_LABEL), environment=env)
        written = write_dir(Path(directory), files,
                            owned=lambda p: p == MANIFEST or kind_for(p) is not None)
    except StationError as exc:
        _err(exc.detail)
        return 2
    print(f"Exported {target} to {directory}: {', '.join(written)}")
    return 0


def apply(directory: str, target: str, *, dry_run: bool, prune: bool) -> int:
    found = _environment(target)
    if isinstance(found, str):
        _err(found)
        return 1
    org_id, env_slug = found
    try:
        files = read_dir(Path(directory))
        with org_scope(org_id):
            env = Environment.objects.select_related("organization").filter(
                slug=env_slug).first()
            if env is None:
                _err(f"no environment {env_slug!r} in {target.partition('/')[0]}.")
                return 1
            plan = services.apply_bundle(actor=Principal.system(ACTOR_LABEL), environment=env,
                                         files=files, prune=prune, dry_run=dry_run)
            print(render(plan, dry_run=dry_run))
    except StationError as exc:
        _err(exc.detail)
        for field, messages in exc.errors.items():
            for message in messages:
                print(f"  {field}: {message}", file=sys.stderr)
        return 2
    return 0
