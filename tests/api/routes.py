"""Every API route, found from the URL resolver, so security tests cover new routes unasked."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.urls import URLPattern, URLResolver, get_resolver

API_PREFIX = "/api/v1/"
_GROUP = re.compile(r"\(\?P<(\w+)>[^)]*\)")
_SKIP_METHODS = {"options", "head", "trace"}


@dataclass(frozen=True)
class Route:
    template: str  # "/api/v1/environments/{pk}"
    method: str  # "get", "post", …
    action: str  # viewset action ("retrieve"), or the method for a plain APIView
    view_class: type

    @property
    def detail(self) -> bool:
        return "{pk}" in self.template

    @property
    def permission(self) -> str | None:
        return getattr(self.view_class, "permission_map", {}).get(self.action)

    @property
    def model(self) -> Any:
        return getattr(self.view_class, "model", None)

    @property
    def lookup_kind(self) -> str:
        return getattr(self.view_class, "lookup_kind", "uuid")

    @property
    def mutating(self) -> bool:
        return self.method not in {"get"}

    def path(self, pk: object = None) -> str:
        return self.template.replace("{pk}", str(pk)) if self.detail else self.template

    def __str__(self) -> str:
        return f"{self.method.upper()} {self.template}"


def _pattern_text(pattern: Any) -> str:
    text = str(pattern)
    text = text.removeprefix("^").removesuffix("$").removesuffix("\\Z")
    return _GROUP.sub(r"{\1}", text)


def _walk(patterns: list[Any], prefix: str) -> list[tuple[str, URLPattern]]:
    found: list[tuple[str, URLPattern]] = []
    for entry in patterns:
        text = prefix + _pattern_text(entry.pattern)
        if isinstance(entry, URLResolver):
            found.extend(_walk(entry.url_patterns, text))
        else:
            found.append((text, entry))
    return found


def api_routes() -> list[Route]:
    routes: list[Route] = []
    for text, entry in _walk(get_resolver().url_patterns, "/"):
        if not text.startswith(API_PREFIX):
            continue
        callback = entry.callback
        view_class = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
        assert view_class is not None, f"{text}: not a DRF view"
        allowed = set(getattr(view_class, "http_method_names", [])) - _SKIP_METHODS
        actions: dict[str, str] | None = getattr(callback, "actions", None)
        if actions is None:  # a plain APIView: its handlers are its methods
            actions = {m: m for m in allowed if hasattr(view_class, m)}
        for method, action in sorted(actions.items()):
            if method in allowed:
                routes.append(Route(text, method, action, view_class))
    assert routes, "no API routes found"
    return routes


def route_id(route: Route) -> str:
    return str(route)
