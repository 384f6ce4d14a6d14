from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from tenants import context


class OrgContextMiddleware:
    """Every request starts with no org and leaves none behind, whatever the view did."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        with context.no_org_scope():
            return self.get_response(request)
