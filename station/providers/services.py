"""Writes for model provider connections (STYLE.md §1: authorize, write, audit).

A connection's API key is never stored: `api_key` holds a `${secret:NAME}` reference to a
vault secret of the same environment (checked to exist), and a pasted key is refused without
being echoed. `base_url` may use `${var:NAME}` / `${secret:NAME}`. Changing connections needs
`agents.write` in the environment (they are part of what agents are built from).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlparse

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from audit import services as audit
from station.agents.models import Agent, agent_name_validator
from station.core.errors import Conflict, InvalidInput
from station.providers.models import ModelProvider
from station.vault.models import Secret, Variable
from station.vault.services import REFERENCE
from tenants.authz import Principal, authorize
from tenants.models import Environment

FIELDS = ("kind", "base_url", "api_key", "timeout_seconds", "max_retries")
DEFAULTS: dict[str, Any] = {"base_url": "", "api_key": "", "timeout_seconds": 60,
                            "max_retries": 2}
KINDS = tuple(kind for kind, _ in ModelProvider.KINDS)
MAX_TIMEOUT_SECONDS = 600
MAX_RETRIES = 10
_ANY_REFERENCE = re.compile(r"\$\{[^}]*\}?")
SECRET_REFERENCE = re.compile(r"^\$\{secret:([A-Za-z][A-Za-z0-9_]{0,63})\}$")
KEY_REFUSED = ("Do not paste an API key here. Store it in the vault (Secrets → New secret) "
               "in this environment and enter its reference, e.g. ${secret:OPENAI_API_KEY}.")


def _int(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def validate_shape(config: dict[str, Any]) -> dict[str, list[str]]:
    """Field errors of a full configuration (FIELDS) that need no database, {} when valid.
    Never quotes api_key (it may be a pasted key)."""
    errors: dict[str, list[str]] = {}
    kind = config.get("kind")
    if kind not in KINDS:
        errors["kind"] = [f"Choose one of: {', '.join(KINDS)}."]
    api_key = config.get("api_key")
    base_url = config.get("base_url")
    if not isinstance(api_key, str):
        errors["api_key"] = ["Text: a ${secret:NAME} reference, or blank."]
    elif api_key.strip() and not SECRET_REFERENCE.match(api_key.strip()):
        errors["api_key"] = ["Enter exactly one reference, ${secret:NAME}, and nothing else."
                             if "${" in api_key else KEY_REFUSED]
    if not isinstance(base_url, str):
        errors["base_url"] = ["Text: the API's http(s) URL, or blank for the default."]
    elif base_url.strip():
        errors.update(_base_url_errors(base_url.strip()))
    if kind == ModelProvider.SCRIPTED:
        for field in ("api_key", "base_url"):
            if isinstance(config.get(field), str) and config[field].strip() \
                    and field not in errors:
                errors[field] = ["A scripted connection calls no API: leave this blank."]
    if not _int(config.get("timeout_seconds"), 1, MAX_TIMEOUT_SECONDS):
        errors["timeout_seconds"] = [f"A whole number of seconds from 1 to "
                                     f"{MAX_TIMEOUT_SECONDS}."]
    if not _int(config.get("max_retries"), 0, MAX_RETRIES):
        errors["max_retries"] = [f"A whole number from 0 to {MAX_RETRIES}."]
    return errors


def validate(environment: Environment, config: dict[str, Any]) -> dict[str, list[str]]:
    """validate_shape, then: every referenced secret and variable exists in `environment`."""
    errors = validate_shape(config)
    if errors:
        return errors
    for field in ("api_key", "base_url"):
        for match in REFERENCE.finditer(config[field]):
            ref_kind, name = match.group(1), match.group(2)
            model = Secret if ref_kind == "secret" else Variable
            if not model.objects.filter(environment=environment, name=name).exists():
                label = "secret" if ref_kind == "secret" else "variable"
                errors.setdefault(field, []).append(
                    f"References {label} {name!r}, which does not exist in {environment.slug}"
                    + (": add it under Secrets first." if label == "secret" else "."))
    return errors


def _base_url_errors(url: str) -> dict[str, list[str]]:
    for match in _ANY_REFERENCE.finditer(url):
        if not REFERENCE.fullmatch(match.group(0)):
            return {"base_url": [f"Bad reference {match.group(0)!r}: write ${{var:NAME}} or "
                                 "${secret:NAME}."]}
    if REFERENCE.match(url):
        return {}  # the scheme comes from a variable: checked when the worker resolves it
    parsed = urlparse(REFERENCE.sub("placeholder", url))
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        return {"base_url": ["Give the API's http(s) URL, e.g. https://api.openai.com/v1 or "
                             "http://vllm.internal:8000/v1."]}
    return {}


def _raise(errors: dict[str, list[str]]) -> None:
    if errors:
        first = next(iter(errors))
        raise InvalidInput(f"{first}: {errors[first][0]}", errors=errors)


def _clean(config: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.strip() if isinstance(v, str) else v) for k, v in config.items()}


@transaction.atomic
def create_provider(*, actor: Principal, environment: Environment, name: str, kind: str,
                    **config: Any) -> ModelProvider:
    authorize(actor, "agents.write", environment.organization_id, environment)
    try:
        agent_name_validator(name)
    except ValidationError as exc:
        raise InvalidInput.field("name", str(exc.messages[0])) from exc
    values = _clean({**DEFAULTS, **{k: v for k, v in config.items() if k in FIELDS},
                     "kind": kind})
    _raise(validate(environment, values))
    if ModelProvider.objects.filter(environment=environment, name=name).exists():
        raise Conflict(f"A model provider named {name!r} exists in {environment.slug}.",
                       errors={"name": ["Taken in this environment."]})
    provider = ModelProvider.objects.create(environment=environment, name=name, **values)
    audit.record("provider.created", actor=actor, target=provider,
                 environment_id=environment.pk, changes={"name": name, **values})
    return provider


@transaction.atomic
def update_provider(*, actor: Principal, provider: ModelProvider,
                    **changes: Any) -> ModelProvider:
    """Change settings (the name is fixed: agents refer to the connection by it)."""
    authorize(actor, "agents.write", provider.organization_id, provider.environment)
    changes = _clean({k: v for k, v in changes.items() if k in FIELDS})
    current = {field: getattr(provider, field) for field in FIELDS}
    _raise(validate(provider.environment, {**current, **changes}))
    diff = {k: audit.change(current[k], v) for k, v in changes.items() if current[k] != v}
    if not diff:
        return provider
    for field, value in changes.items():
        setattr(provider, field, value)
    provider.updated_at = timezone.now()
    provider.save()
    audit.record("provider.updated", actor=actor, target=provider,
                 environment_id=provider.environment_id, changes=diff)
    return provider


def agents_using(provider: ModelProvider) -> list[str]:
    return list(Agent.objects.filter(environment_id=provider.environment_id,
                                     provider=provider.name)
                .order_by("name").values_list("name", flat=True))


@transaction.atomic
def delete_provider(*, actor: Principal, provider: ModelProvider) -> None:
    """Remove a connection no agent of its environment names (their runs would fail)."""
    authorize(actor, "agents.write", provider.organization_id, provider.environment)
    if users := agents_using(provider):
        shown = ", ".join(users[:5]) + (f" and {len(users) - 5} more" if len(users) > 5 else "")
        raise Conflict(f"Agents use {provider.name!r} in {provider.environment.slug}: {shown}. "
                       "Point them at another connection first.")
    audit.record("provider.deleted", actor=actor, target=provider,
                 environment_id=provider.environment_id,
                 changes={"name": provider.name, "kind": provider.kind})
    provider.delete()
