from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from django.db.models import QuerySet

from audit import chain
from audit.models import AuditEvent


def filter_events(
    *,
    actor: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[AuditEvent]:
    """The current org's events, newest first, filtered by actor (id or label), action, time."""
    events = AuditEvent.objects.all()
    if actor:
        events = events.filter(actor_label__icontains=actor) | events.filter(actor_id=actor)
    if action:
        events = events.filter(action__startswith=action)
    if since:
        events = events.filter(occurred_at__gte=since)
    if until:
        events = events.filter(occurred_at__lt=until)
    return events.order_by("-sequence")


def _chain_rows() -> Iterator[dict[str, Any]]:
    fields = ("id", "hash", *chain.HASHED_FIELDS)
    yield from AuditEvent.objects.order_by("sequence").values(*fields).iterator(chunk_size=2000)


def verify_current_org() -> chain.Verification:
    return chain.verify_events(_chain_rows())
