"""A freed slot re-sends only the runs a worker turned away at the org's cap.

Found by benchmarks/runs_bench.py (figure 3): every finished run re-sent the org's oldest
queued runs, up to its free slots, although those still had their first message on the way;
a burst of 30 runs on one worker executed 92 `execute_run` tasks that only found their run
already taken ("skipped"), three per run.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from station.runs import lifecycle, services
from station.runs.models import Run
from tenants import context
from tests.fixtures import SYSTEM
from tests.runs.conftest import RunWorld


def _start(world: RunWorld, agent: Any) -> Run:
    with world.fx.scope(), transaction.atomic():
        run, _ = services.start_run(actor=SYSTEM, agent=agent, input={})
    return run


def test_a_freed_slot_sends_the_run_turned_away_not_runs_still_on_their_way(
        world: RunWorld, sent: list[tuple[str, str]], settings: Any) -> None:
    settings.RUN_CONCURRENCY_PER_ORG = 2
    agent = world.agent("fair", [{"content": "ok"}])
    # `early` is older than `late` but its message has not reached a worker yet.
    a, b, early, late = (_start(world, agent) for _ in range(4))
    org = str(world.fx.org.pk)
    with context.org_context(world.fx.org):
        assert lifecycle.claim(a.pk, "w1") is not None
        assert lifecycle.claim(b.pk, "w2") is not None
        assert lifecycle.claim(late.pk, "w3") is None  # turned away at the cap
        sent.clear()
        assert lifecycle.complete(a, "w1", Run.SUCCEEDED, output="ok")
    assert sent == [(org, str(late.pk))]  # not `early`: its own message will claim it

    with context.org_context(world.fx.org):
        assert lifecycle.claim(late.pk, "w3") is not None
        sent.clear()
        assert lifecycle.complete(b, "w2", Run.SUCCEEDED, output="ok")
    assert sent == []  # nobody was turned away: nothing to send again
    with context.org_context(world.fx.org):
        assert lifecycle.claim(early.pk, "w4") is not None  # its first message still works


def test_the_reaper_still_sends_queued_runs_whose_message_was_lost(
        world: RunWorld, sent: list[tuple[str, str]]) -> None:
    from datetime import timedelta

    from django.utils import timezone

    agent = world.agent("lost", [{"content": "ok"}])
    run = _start(world, agent)
    sent.clear()
    assert lifecycle.reap(now=timezone.now() + timedelta(hours=1))["dispatched"] == 1
    assert sent == [(str(world.fx.org.pk), str(run.pk))]
