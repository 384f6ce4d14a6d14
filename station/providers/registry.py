"""From a provider connection to an `LLMProvider`.

`build(config)` picks the implementation by kind (a small registry, so a new kind is one
`register()` call). `connect(environment, name, ...)` is the worker's entry point: it loads the
connection by name, resolves its `${secret:…}`/`${var:…}` references through the vault (each
secret reveal audited; refused outside worker processes) and returns the provider together with
the revealed values, which the caller redacts from anything it stores.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from urllib.parse import urlparse

from django.db import transaction

from station.core import egress
from station.core.errors import NotFound
from station.providers.base import LLMProvider, ProviderConfig, ProviderError
from station.providers.models import ModelProvider
from station.vault.services import redact, resolve_references
from tenants.authz import Principal
from tenants.models import Environment

Factory = Callable[[ProviderConfig], LLMProvider]

_FACTORIES: dict[str, Factory] = {}


def register(kind: str, factory: Factory) -> None:
    if kind in _FACTORIES:
        raise ValueError(f"Provider kind {kind!r} is registered twice.")
    _FACTORIES[kind] = factory


def kinds() -> list[str]:
    return sorted(_FACTORIES)


def build(config: ProviderConfig) -> LLMProvider:
    factory = _FACTORIES.get(config.kind)
    if factory is None:
        raise ProviderError(f"Unknown provider kind {config.kind!r} (known: "
                            f"{', '.join(kinds())}).", kind="config")
    return factory(config)


def lazy(module: str, attribute: str) -> Factory:
    """A factory importing its module on first use: the SDKs take seconds to import, and
    web processes never call a model."""
    def factory(config: ProviderConfig) -> LLMProvider:
        implementation: Factory = getattr(importlib.import_module(module), attribute)
        return implementation(config)

    return factory


register(ModelProvider.OPENAI, lazy("station.providers.openai_provider", "OpenAIProvider"))
register(ModelProvider.ANTHROPIC, lazy("station.providers.anthropic_provider",
                                       "AnthropicProvider"))
register(ModelProvider.SCRIPTED, lazy("station.providers.scripted", "ScriptedProvider"))


def connect(environment: Environment, name: str, *, actor: Principal,
            purpose: str) -> tuple[LLMProvider, list[str]]:
    """The provider connection `name` of `environment`, ready to call, and the secret values
    revealed for it. Call with the org scope active (worker processes only when the
    connection references secrets). Raises NotFound or ProviderError(kind="config")."""
    connection = ModelProvider.objects.filter(environment=environment, name=name).first()
    if connection is None:
        raise NotFound(f"No model provider connection named {name!r} in environment "
                       f"{environment.slug}: add it under Model providers, or correct the "
                       "agent's provider.")
    secrets: list[str] = []

    def resolve(text: str) -> str:
        resolved = resolve_references(text, environment=environment, purpose=purpose,
                                      actor=actor)
        secrets.extend(resolved.secret_values)
        return resolved.text

    try:
        with transaction.atomic():
            api_key = resolve(connection.api_key).strip()
            base_url = resolve(connection.base_url).strip()
    except NotFound as exc:  # a secret or variable deleted after the connection was saved
        raise ProviderError(f"Connection {name!r} cannot be used: {exc.detail}",
                            kind="config") from None
    if base_url:
        parsed = urlparse(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            shown = redact(base_url, secrets)
            raise ProviderError(f"Connection {name!r} has base URL {shown!r}, which is not an "
                                "http(s) URL.", kind="config")
        # The operator's rule (STATION_OUTBOUND_NETWORKS) for an address in the URL, before
        # any credential is sent; no lookup here (the run's setup transaction does no I/O):
        # the pinned transport judges a name's addresses when it connects.
        try:
            egress.check_tool_url_literal(base_url)
        except egress.NotPublic as exc:
            if exc.reason == "not_public":
                raise ProviderError(
                    f"Connection {name!r}: {redact(exc.detail, secrets)}; model providers "
                    "are never reached on link-local addresses such as the cloud metadata "
                    "service, nor on private ones when the operator set "
                    "STATION_OUTBOUND_NETWORKS=public.", kind="config") from None
    if connection.kind != ModelProvider.SCRIPTED and not api_key:
        what = "references an empty secret" if connection.api_key else "has no API key"
        raise ProviderError(f"Connection {name!r} {what}: store the key in the vault and "
                            "reference it as ${secret:NAME} in the connection.", kind="config")
    config = ProviderConfig(kind=connection.kind, base_url=base_url, api_key=api_key,
                            timeout_seconds=float(connection.timeout_seconds),
                            max_retries=connection.max_retries)
    return build(config), secrets
