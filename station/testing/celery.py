"""Point this process's Celery app at another broker (tests and benchmarks that start their
own broker next to a real worker subprocess)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def point_celery_at(app: Any, broker: str | None, backend: str | None) -> None:
    """Send to (and read results from) `broker` from now on. Celery caches its connection and
    producer pools and the result backend, so those are dropped too."""
    app.conf.update(broker_url=broker, result_backend=backend, task_always_eager=False)
    app._pool = None
    amqp = app.__dict__.get("amqp")
    if amqp is not None:
        amqp._producer_pool = None
    app._local.__dict__.pop("backend", None)


@contextmanager
def worker_thread_connections_closed() -> Iterator[None]:
    """While a test runs a Celery worker in a thread of its own: that thread closes its
    database connections after each task. A worker keeps them across tasks (CONN_MAX_AGE);
    left open when the thread ends, one would keep the test database from being dropped
    at the end of the session ("being accessed by other users")."""
    from celery.signals import task_postrun
    from django.db import connections

    def close(**_: Any) -> None:
        if threading.current_thread() is not threading.main_thread():
            connections.close_all()

    task_postrun.connect(close, weak=False)
    try:
        yield
    finally:
        task_postrun.disconnect(close)
