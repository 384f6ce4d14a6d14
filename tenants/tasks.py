from __future__ import annotations

from station.celery import app
from station.tasks import OrgTask


@app.task(bind=True, base=OrgTask, name="station.tenants.ping")
def org_ping(self: OrgTask, *, org_id: str) -> str:
    """Round-trips through the broker inside an org scope (used by tests and health checks)."""
    from django.db import transaction

    from tenants.models import Environment

    with transaction.atomic():
        return f"{org_id}:{Environment.objects.count()}"
