from django.conf import settings
from django.http import HttpRequest

from station.accounts.adapter import LoginAuditAdapter


class StationAccountAdapter(LoginAuditAdapter):
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        return bool(settings.ACCOUNT_ALLOW_REGISTRATION)
