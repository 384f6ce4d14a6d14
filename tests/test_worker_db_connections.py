"""A worker keeps its database connection from one task to the next (as a web process does
from one request to the next): Celery's Django fixup would close it around every task, and
every run paid for a new PostgreSQL session."""

from __future__ import annotations

from typing import Any

import pytest
from celery.fixups.django import DjangoWorkerFixup  # type: ignore[attr-defined]
from django.db import connection

from station.celery import app, close_old_db_connections


@pytest.mark.django_db
def test_celerys_fixup_no_longer_closes_the_connection_around_each_task() -> None:
    fixup = DjangoWorkerFixup(app)
    connection.ensure_connection()
    raw = connection.connection
    for _ in range(10):  # prerun and postrun of five tasks
        fixup.close_database()
    assert connection.connection is raw


class _Request:
    def __init__(self, eager: bool) -> None:
        self.is_eager = eager


class _Task:
    def __init__(self, eager: bool) -> None:
        self.request = _Request(eager)


def test_each_task_applies_conn_max_age_like_a_request(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    monkeypatch.setattr("django.db.close_old_connections", lambda: calls.append("closed old"))
    close_old_db_connections(task=_Task(eager=False))  # type: ignore[arg-type]
    assert calls == ["closed old"]
    # An eager task runs inside its caller's transaction: its connection is not touched.
    close_old_db_connections(task=_Task(eager=True))  # type: ignore[arg-type]
    assert calls == ["closed old"]
