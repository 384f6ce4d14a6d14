"""What Station adds to allauth's account adapter: clearer rate-limit text and an audit event
when a known account hits the failed-login limit."""

from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from django.core.exceptions import ValidationError
from django.http import HttpRequest

TOO_MANY = ("Too many failed sign-in attempts for this account or from your network. "
            "Wait a few minutes and try again, or reset your password.")


class LoginAuditAdapter(DefaultAccountAdapter):
    error_messages = {**DefaultAccountAdapter.error_messages, "too_many_login_attempts": TOO_MANY}

    def pre_authenticate(self, request: HttpRequest, **credentials: Any) -> None:
        try:
            super().pre_authenticate(request, **credentials)
        except ValidationError as exc:
            if exc.code == "too_many_login_attempts":
                audit_rate_limited(credentials.get("email") or credentials.get("username"),
                                   stage="password")
            raise


def audit_rate_limited(email: Any, *, stage: str) -> None:
    from station.accounts.events import record_for_user
    from station.accounts.signals import user_for_email

    user = user_for_email(str(email or ""))
    if user is not None:
        record_for_user("account.login_failed", user=user,
                        changes={"reason": "rate_limited", "stage": stage})
