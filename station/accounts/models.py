from __future__ import annotations

import uuid
from typing import ClassVar

from django.conf import settings
from django.db import models
from django.utils import timezone


class UserSession(models.Model):
    """One signed-in browser of a person, shown on their sessions page.

    A platform table (sessions belong to a person, not to an org). The Django session row
    with the same key is the source of truth: deleting it signs the browser out on its next
    request; a row here whose session is gone is ignored and cleaned up.
    """

    # Pages and URLs name a session by this id, never by its key (the key is the cookie).
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    session_key = models.CharField(max_length=40, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes: ClassVar[list[models.Index]] = [
            models.Index(fields=["user", "-last_seen_at"], name="accounts_session_user_seen"),
        ]

    def __str__(self) -> str:
        return f"session of {self.user_id} from {self.ip or 'unknown address'}"

    @property
    def device(self) -> str:
        """"Firefox on Linux"-style summary of the user agent, for people."""
        return describe_user_agent(self.user_agent)


_BROWSERS = (("Edg/", "Edge"), ("Firefox/", "Firefox"), ("Chrome/", "Chrome"),
             ("Safari/", "Safari"), ("curl/", "curl"))
_SYSTEMS = (("Android", "Android"), ("iPhone", "iOS"), ("iPad", "iPadOS"),
            ("Windows", "Windows"), ("Mac OS X", "macOS"), ("Linux", "Linux"))


def describe_user_agent(agent: str) -> str:
    browser = next((name for mark, name in _BROWSERS if mark in agent), "")
    system = next((name for mark, name in _SYSTEMS if mark in agent), "")
    if browser and system:
        return f"{browser} on {system}"
    return browser or system or (agent[:60] if agent else "Unknown browser")
