"""A real Celery worker (in a thread) consuming from the real broker runs org-scoped tasks."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from celery.contrib.testing.worker import start_worker
from django.conf import settings

from station.celery import app
from station.testing.celery import worker_thread_connections_closed
from tenants.tasks import org_ping


@pytest.fixture(scope="session")
def broker() -> Iterator[str]:
    """The configured broker; with none configured, the embedded Valkey in var/test."""
    if os.environ.get("CELERY_BROKER_URL"):
        yield settings.CELERY_BROKER_URL
        return
    from station import embedded

    proc = embedded.start_broker(settings.DATA_DIR)
    try:
        yield settings.CELERY_BROKER_URL
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def worker(broker: str, committed_db: None) -> Iterator[Any]:
    app.conf.update(
        broker_url=broker,
        result_backend=broker.replace("redis+socket", "redis+socket"),
        task_always_eager=False,
    )
    with worker_thread_connections_closed(), start_worker(
            app, perform_ping_check=False, pool="solo", shutdown_timeout=10) as w:
        yield w
    app.conf.update(result_backend=None)


def test_task_runs_in_its_org_scope_under_rls(worker, make_org):
    a = make_org("worker-a")
    make_org("worker-b")
    result = org_ping.delay(org_id=str(a.org.pk)).get(timeout=30)
    # Three environments: only org A's rows are visible to the task, not org B's.
    assert result == f"{a.org.pk}:3"


def test_task_without_org_is_refused(worker):
    with pytest.raises(TypeError, match="org_id"):
        org_ping.delay().get(timeout=30)
