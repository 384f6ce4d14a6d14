"""Claiming and reaping a run lock the run's row only.

Found by benchmarks/runs_bench.py (figure 3): `select_for_update()` with `select_related`
locked the joined agent, version and environment rows too (PostgreSQL locks the rows of every
table in `FOR UPDATE` without `OF`). Creating a run takes KEY SHARE locks on those rows (its
foreign-key checks, at commit), so a worker's claim and a `start_run` of the same agent
deadlocked under load ("deadlock detected ... while locking tuple (0,1) in relation
agents_agent"): the claim failed and its run stayed queued until the reaper's sweep, or the
API's start_run was the one cancelled.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from django.db import transaction
from django.utils import timezone

from station.runs import lifecycle, services
from station.runs.models import Run
from tenants import context
from tests.fixtures import SYSTEM
from tests.runs.conftest import RunWorld

# What the foreign-key checks of a new run (or step, approval, ...) lock, at commit.
REFERENCED = (("agents_agent", "agent_id"), ("agents_agentversion", "version_id"),
              ("tenants_environment", "environment_id"))


def _start(world: RunWorld, agent: Any) -> Run:
    with world.fx.scope(), transaction.atomic():
        run, _ = services.start_run(actor=SYSTEM, agent=agent, input={})
    return run


def _assert_referenced_rows_free(owner_cursor: Any, world: RunWorld, run: Run,
                                 during: Callable[[], Any]) -> None:
    """Run `during` in a transaction left open, and meanwhile take the KEY SHARE locks a
    concurrent insert of a run of the same agent would take: none may have to wait."""
    owner_cursor.execute("SELECT set_config('app.org_id', %s, false)", [str(world.fx.org.pk)])
    with context.org_context(world.fx.org), transaction.atomic():
        during()
        for table, column in REFERENCED:
            try:
                owner_cursor.execute(f"SELECT 1 FROM {table} WHERE id = %s "  # noqa: S608
                                     "FOR KEY SHARE NOWAIT", [getattr(run, column)])
            except psycopg.errors.LockNotAvailable:
                pytest.fail(f"{table} row of the run is locked against new runs")


def test_a_claim_locks_only_the_run(world: RunWorld, sent: Any, owner_cursor: Any) -> None:
    agent = world.agent("busy", [{"content": "ok"}])
    run = _start(world, agent)
    _assert_referenced_rows_free(owner_cursor, world, run,
                                 lambda: lifecycle.claim(run.pk, "w1"))
    with world.fx.scope(), transaction.atomic():
        assert Run.objects.get(pk=run.pk).status == Run.RUNNING


def test_the_reaper_locks_only_the_run(world: RunWorld, sent: Any, owner_cursor: Any) -> None:
    agent = world.agent("stale", [{"content": "ok"}])
    run = _start(world, agent)
    with context.org_context(world.fx.org):
        assert lifecycle.claim(run.pk, "w1") is not None
    counts: dict[str, int] = {}
    _assert_referenced_rows_free(
        owner_cursor, world, run,
        lambda: counts.update(lifecycle.reap(now=timezone.now() + timedelta(hours=1))))
    assert counts["retried"] == 1
