"""allauth.mfa's code form, auditing when an account hits the MFA attempt limit."""

from __future__ import annotations

from allauth.mfa.base.forms import AuthenticateForm
from django.core.exceptions import ValidationError

from station.accounts.adapter import audit_rate_limited


class AuditedAuthenticateForm(AuthenticateForm):
    def clean_code(self) -> str:
        try:
            return super().clean_code()
        except ValidationError as exc:
            if exc.code == "too_many_login_attempts":
                audit_rate_limited(self.user.email, stage="mfa")
            raise
