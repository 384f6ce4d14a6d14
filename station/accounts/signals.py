"""Sign-in, sign-out and MFA events → session tracking and audit events.

Password logins go through allauth and its `user_logged_in` signal. SSO logins
(station.identity) call Django's `login()` directly and audit themselves
(`identity.sso_login_succeeded`), so they are tracked as sessions here but not audited twice.
"""

from __future__ import annotations

from typing import Any

from allauth.account import signals as account_signals
from allauth.mfa import signals as mfa_signals
from allauth.mfa.models import Authenticator
from django.contrib.auth import signals as auth_signals
from django.http import HttpRequest

from station.accounts import sessions
from station.accounts.events import record_for_user
from tenants.models import User


def _methods(request: HttpRequest, user: User) -> list[str]:
    """How the person proved who they are this time ("password", "mfa:totp", ...)."""
    # allauth keeps these records in the session; its reader lives in an internal module.
    from allauth.account.internal.flows.login import get_authentication_records

    found = []
    for rec in get_authentication_records(request, user):
        method = str(rec.get("method", ""))
        found.append(f"{method}:{rec['type']}" if rec.get("type") else method)
    return found


def on_login(sender: Any, request: HttpRequest | None, user: User, **kwargs: Any) -> None:
    """Django's signal, sent by every kind of login: remember the browser."""
    if request is not None and hasattr(request, "session"):
        sessions.track(request, user)


def on_allauth_login(sender: Any, request: HttpRequest, user: User, **kwargs: Any) -> None:
    if kwargs.get("sociallogin") is not None:
        return  # social/SSO logins are audited by station.identity
    record_for_user("account.login_succeeded", user=user,
                    changes={"methods": _methods(request, user)})


def user_for_email(email: str) -> User | None:
    email = (email or "").strip()
    return User.objects.filter(email__iexact=email).first() if email else None


def on_login_failed(sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None,
                    **kwargs: Any) -> None:
    """Django's signal: no backend accepted the credentials (wrong password, inactive)."""
    user = user_for_email(str(credentials.get("email") or credentials.get("username") or ""))
    if user is None:
        return
    reason = "wrong_password" if user.is_active else "inactive_account"
    record_for_user("account.login_failed", user=user, changes={"reason": reason})


def on_logout(sender: Any, request: HttpRequest | None, user: User | None, **kwargs: Any) -> None:
    if request is None or user is None:
        return
    sessions.forget(request.session.session_key)
    record_for_user("account.logout", user=user)


def on_authenticator_added(sender: Any, request: HttpRequest, user: User,
                           authenticator: Authenticator, **kwargs: Any) -> None:
    record_for_user("account.mfa_enrolled", user=user, changes={"type": authenticator.type})


def on_authenticator_removed(sender: Any, request: HttpRequest, user: User,
                             authenticator: Authenticator, **kwargs: Any) -> None:
    record_for_user("account.mfa_removed", user=user, changes={"type": authenticator.type})


def on_authenticator_reset(sender: Any, request: HttpRequest, user: User,
                           authenticator: Authenticator, **kwargs: Any) -> None:
    record_for_user("account.recovery_codes_regenerated", user=user,
                    changes={"type": authenticator.type})


def on_authenticator_used(sender: Any, request: HttpRequest, user: User,
                          authenticator: Authenticator, **kwargs: Any) -> None:
    if authenticator.type == Authenticator.Type.RECOVERY_CODES:
        # Re-read: allauth marks the code used on a fresh copy of the row.
        fresh = Authenticator.objects.get(pk=authenticator.pk)
        left = len(fresh.wrap().get_unused_codes())
        record_for_user("account.recovery_code_used", user=user,
                        changes={"unused_codes_left": left,
                                 "reauthentication": bool(kwargs.get("reauthenticated"))})


def on_mfa_failed(sender: Any, request: HttpRequest, user: User, authenticator: Authenticator,
                  **kwargs: Any) -> None:
    stage = "reauthentication" if kwargs.get("reauthentication") else "login"
    record_for_user("account.login_failed", user=user,
                    changes={"reason": "incorrect_mfa_code", "stage": stage})


def connect() -> None:
    uid = "station.accounts"
    auth_signals.user_logged_in.connect(on_login, dispatch_uid=f"{uid}.login")
    auth_signals.user_login_failed.connect(on_login_failed, dispatch_uid=f"{uid}.failed")
    auth_signals.user_logged_out.connect(on_logout, dispatch_uid=f"{uid}.logout")
    account_signals.user_logged_in.connect(on_allauth_login, dispatch_uid=f"{uid}.audit_login")
    mfa_signals.authenticator_added.connect(on_authenticator_added, dispatch_uid=f"{uid}.added")
    mfa_signals.authenticator_removed.connect(on_authenticator_removed,
                                              dispatch_uid=f"{uid}.removed")
    mfa_signals.authenticator_reset.connect(on_authenticator_reset, dispatch_uid=f"{uid}.reset")
    mfa_signals.authenticator_used.connect(on_authenticator_used, dispatch_uid=f"{uid}.used")
    mfa_signals.authentication_failed.connect(on_mfa_failed, dispatch_uid=f"{uid}.mfa_failed")
