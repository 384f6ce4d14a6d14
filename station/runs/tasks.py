"""Celery tasks for runs (STYLE.md §7: thin; ids in, the engine does the work).

`execute_run` is idempotent: it claims the run with a conditional update, so a duplicate
delivery (a redelivered message after a worker died, a second dispatch) does nothing. The
global task settings apply (acks_late, reject_on_worker_lost, prefetch 1, visibility timeout
above the hard time limit); the reaper, not Celery, decides retries, from heartbeats.
"""

from __future__ import annotations

import uuid
from typing import Any

from celery.signals import worker_process_shutdown, worker_shutdown

from station.agents.validation import LIMITS
from station.celery import app
from station.tasks import OrgTask

# The run loop enforces each agent's own max_seconds; Celery's limits for this task are only
# a backstop above the longest an agent may ask for (the global task limits, ~15 min, would
# cut longer runs short).
RUN_TASK_SOFT_TIME_LIMIT = LIMITS["max_seconds"][1] + 120
RUN_TASK_TIME_LIMIT = RUN_TASK_SOFT_TIME_LIMIT + 60


@app.task(bind=True, base=OrgTask, name="station.runs.execute",
          soft_time_limit=RUN_TASK_SOFT_TIME_LIMIT, time_limit=RUN_TASK_TIME_LIMIT)
def execute_run(self: OrgTask, *, org_id: str, run_id: str) -> str:
    from station.runs import engine

    return engine.execute(uuid.UUID(run_id))


@app.task(name="station.runs.reap")
def reap_runs() -> dict[str, Any]:
    """Beat, every STATION_RUN_REAPER_INTERVAL_SECONDS: stale runs retried or failed, queued
    runs waiting for capacity sent again."""
    from station.runs import lifecycle

    return lifecycle.reap()


@worker_process_shutdown.connect
@worker_shutdown.connect
def close_warm_mcp_sessions(**_: Any) -> None:
    """A worker process that stops closes the MCP sessions it kept warm (stdio servers'
    processes end with them); prefork children skip atexit, hence the signal."""
    from station.runs.mcp_pool import warm

    warm.close_all(stop_portal=True)
