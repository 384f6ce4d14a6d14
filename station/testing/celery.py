"""Point this process's Celery app at another broker (tests and benchmarks that start their
own broker next to a real worker subprocess)."""

from __future__ import annotations

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
