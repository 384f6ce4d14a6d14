"""Live run events: a PostgreSQL NOTIFY on the run's channel inside the transaction that
records a step or a status change, so listeners hear it exactly when it becomes visible.

The payload is only the run id and a sequence hint: a listener (the console's server-sent
events stream) re-reads the run and its steps under its own org scope, so nothing tenant
related travels outside row-level security.
"""

from __future__ import annotations

import json
import uuid

from django.db import connection

CHANNEL = "station_run_events"


def publish(run_id: uuid.UUID, kind: str, sequence: int | None = None) -> None:
    """Queue a notification for `run_id` (delivered when the current transaction commits)."""
    payload = json.dumps({"run": str(run_id), "kind": kind, "seq": sequence})
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, payload])
