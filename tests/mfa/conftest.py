"""Helpers for MFA, session and rate-limit tests: real password sign-ins through allauth's
views, TOTP codes computed from the enrolled secret with allauth's own algorithm."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value
from django.core.cache import cache
from django.test import Client, TestCase

from tenants.models import User

PASSWORD = "correct horse battery staple 42"
UA = "Mozilla/5.0 (X11; Linux x86_64) StationTest/1.0"


@pytest.fixture(autouse=True)
def clear_cache() -> Iterator[None]:
    """Rate limits and used-TOTP markers live in the cache; no test inherits another's."""
    cache.clear()
    yield
    cache.clear()


def totp_now(secret: str, *, offset: int = 0) -> str:
    return format_hotp_value(hotp_value(secret, int(time.time()) // 30 + offset))


def totp_secret(user: User) -> str:
    from allauth.mfa.utils import decrypt

    auth = Authenticator.objects.get(user=user, type=Authenticator.Type.TOTP)
    return str(decrypt(auth.data["secret"]))


@pytest.fixture
def with_password() -> Callable[[User], User]:
    def _set(user: User) -> User:
        if not user.check_password(PASSWORD):  # a new hash would sign other browsers out
            user.set_password(PASSWORD)
            user.save()
        return user
    return _set


def committed(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a request and then its on-commit callbacks (allauth sends some MFA signals on
    commit; the test transaction never commits)."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        return call(*args, **kwargs)


def browser(ip: str = "203.0.113.7") -> Client:
    return Client(HTTP_USER_AGENT=UA, REMOTE_ADDR=ip)


def sign_in(client: Client, email: str, password: str = PASSWORD) -> Any:
    return client.post("/accounts/login/", {"login": email, "password": password})


@pytest.fixture
def signed_in(with_password: Callable[[User], User]) -> Callable[..., Client]:
    """A browser signed in with email and password through allauth's login view."""
    def _go(user: User, ip: str = "203.0.113.7") -> Client:
        with_password(user)
        client = browser(ip)
        response = sign_in(client, user.email)
        assert response.status_code == 302, response.content[:2000]
        return client
    return _go


def enrol_totp(client: Client) -> str:
    """Enrol an authenticator app through the console pages; returns the secret."""
    page = client.get("/accounts/2fa/totp/activate/")
    if page.status_code == 302 and page["Location"].startswith("/accounts/reauthenticate/"):
        # allauth asks for the password again before a second factor is added.
        confirmed = client.post(page["Location"], {"password": PASSWORD})
        assert confirmed.status_code == 302, confirmed.content[:2000]
        page = client.get("/accounts/2fa/totp/activate/")
    assert page.status_code == 200, page.status_code
    secret = page.context["form"].secret
    response = committed(client.post, "/accounts/2fa/totp/activate/",
                         {"code": totp_now(secret)})
    assert response.status_code == 302, response.content[:3000]
    return str(secret)


def audit_actions(fx: Any, prefix: str = "account.") -> list[tuple[str, dict[str, Any]]]:
    from audit.models import AuditEvent

    with fx.scope():
        return [(e.action, e.changes) for e in
                AuditEvent.objects.filter(action__startswith=prefix).order_by("sequence")]
