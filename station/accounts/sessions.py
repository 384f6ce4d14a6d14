"""Who is signed in where: `UserSession` rows beside Django's session store.

Django's session row is what keeps a browser signed in; revoking deletes it, so the browser
is anonymous on its very next request. `UserSession` adds what a person needs to recognise a
session (address, browser, last activity). Rows are written at sign-in and adopted lazily
by the middleware for sessions that predate tracking or whose key was cycled.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.models import Session
from django.http import HttpRequest
from django.utils import timezone

from station.accounts.models import UserSession
from station.core.request_context import current_request

# Session data key: when this browser's row was last touched (epoch seconds).
SEEN_KEY = "_station_seen"
# Last activity is written at most this often per session (one UPDATE a minute, not per hit).
TOUCH_EVERY_SECONDS = 60


def _client() -> tuple[str | None, str]:
    ctx = current_request.get()
    if ctx is None:
        return None, ""
    return ctx.ip, (ctx.user_agent or "")[:300]


def track(request: HttpRequest, user: Any) -> None:
    """Record the browser that just signed in (called on every kind of login)."""
    session = request.session
    if session.session_key is None:
        session.save()
    ip, agent = _client()
    now = timezone.now()
    UserSession.objects.update_or_create(
        session_key=session.session_key,
        defaults={"user_id": user.pk, "ip": ip, "user_agent": agent,
                  "created_at": now, "last_seen_at": now})
    session[SEEN_KEY] = int(time.time())


def touch(request: HttpRequest) -> None:
    """Note activity of a signed-in browser, at most once a minute."""
    session = request.session
    seen = session.get(SEEN_KEY)
    now_s = int(time.time())
    if isinstance(seen, int) and now_s - seen < TOUCH_EVERY_SECONDS:
        return
    key = session.session_key
    if key is None:
        return
    updated = UserSession.objects.filter(session_key=key).update(last_seen_at=timezone.now())
    if not updated:
        ip, agent = _client()
        UserSession.objects.get_or_create(
            session_key=key,
            defaults={"user_id": request.user.pk, "ip": ip, "user_agent": agent})
    session[SEEN_KEY] = now_s


def forget(session_key: str | None) -> None:
    if session_key:
        UserSession.objects.filter(session_key=session_key).delete()


def active_sessions(user_id: Any) -> list[UserSession]:
    """The user's live sessions, most recently active first; stale rows are cleaned up."""
    rows = list(UserSession.objects.filter(user_id=user_id).order_by("-last_seen_at"))
    live = set(Session.objects.filter(
        session_key__in=[r.session_key for r in rows], expire_date__gt=timezone.now(),
    ).values_list("session_key", flat=True))
    stale = [r.session_key for r in rows if r.session_key not in live]
    if stale:
        UserSession.objects.filter(session_key__in=stale).delete()
    return [r for r in rows if r.session_key in live]


def end_sessions(keys: Iterable[str]) -> int:
    """Delete these Django sessions (signed out on their next request) and their rows."""
    keys = list(keys)
    deleted, _ = Session.objects.filter(session_key__in=keys).delete()
    UserSession.objects.filter(session_key__in=keys).delete()
    return deleted


def end_all_sessions(user_id: Any) -> int:
    """Sign the user out of every browser. Tracked sessions go by key; a scan catches any
    live session not tracked yet (signed in before tracking and idle since)."""
    ended = end_sessions(
        UserSession.objects.filter(user_id=user_id).values_list("session_key", flat=True))
    untracked = [
        s.session_key
        for s in Session.objects.filter(expire_date__gt=timezone.now()).iterator()
        if s.get_decoded().get(SESSION_KEY) == str(user_id)
    ]
    return ended + (end_sessions(untracked) if untracked else 0)
