from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from station.accounts import sessions


class SessionActivityMiddleware:
    """Keeps each signed-in browser's `UserSession` row (last activity) up to date.

    A revoked session needs nothing here: its Django session row is gone, so
    AuthenticationMiddleware already sees an anonymous user.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated and request.session.session_key:
            sessions.touch(request)
        return self.get_response(request)
