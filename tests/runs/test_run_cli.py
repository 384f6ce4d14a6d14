"""`station run ORG/ENV/AGENT --input JSON` starts a run and follows it to its end."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import transaction

from station.cli import main
from station.runs import engine, lifecycle
from station.runs.models import Run
from tenants import context
from tests.runs.conftest import RunWorld


@pytest.fixture
def worker_thread(monkeypatch: pytest.MonkeyPatch) -> list[threading.Thread]:
    """Sends go to a worker thread that executes the run, as a Celery worker would."""
    threads: list[threading.Thread] = []

    def send(org_id: Any, run_id: Any) -> None:
        def work() -> None:
            from django.db import connection

            with context.org_context(org_id):
                engine.execute(run_id)
            connection.close()

        thread = threading.Thread(target=work)
        threads.append(thread)
        thread.start()

    monkeypatch.setattr(lifecycle, "_send", send)
    return threads


def test_station_run_follows_the_run_and_exits_zero(world: RunWorld, worker_thread: Any,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    world.agent("clock-bot", [
        {"tool_calls": [{"name": "clock__get_current_time",
                         "arguments": {"timezone": "Europe/Paris"}}], "delay_seconds": 0.5},
        {"content": "Paris: {last_tool_result}"}], tools=["clock/get_current_time"],
        input_schema={"type": "object", "properties": {"message": {"type": "string"}}})
    code = main(["run", "runco/dev/clock-bot", "--input", '{"message": "time?"}'])
    for thread in worker_thread:
        thread.join(timeout=30)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "queued" in out and "[succeeded]" in out
    assert "calls clock__get_current_time" in out
    assert "clock/get_current_time" in out and "Europe/Paris" in out
    assert "Run succeeded: 3 steps" in out
    with context.org_context(world.fx.org), transaction.atomic():
        assert Run.objects.get().trigger == "cli"


def test_station_run_exits_one_when_the_run_fails(world: RunWorld, worker_thread: Any,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    world.agent("loopy", [{"tool_calls": [{"name": "clock__get_current_time",
                                           "arguments": {"timezone": "UTC"}}]}] * 3,
                tools=["clock/get_current_time"], max_steps=1)
    assert main(["run", "runco/dev/loopy"]) == 1
    for thread in worker_thread:
        thread.join(timeout=30)
    assert "limit of 1 model calls" in capsys.readouterr().err


@pytest.mark.parametrize(("args", "message"), [
    (["run", "runco/dev"], "give ORG/ENV/AGENT"),
    (["run", "runco/dev/nobody"], "no agent 'nobody'"),
    (["run", "nowhere/dev/x"], "no organization 'nowhere'"),
    (["run", "runco/dev/strict", "--input", "{not json"], "not valid JSON"),
    (["run", "runco/dev/strict", "--input", '{"count": "three"}'], "count"),
])
def test_station_run_refuses_bad_input_and_starts_nothing(
        world: RunWorld, worker_thread: Any, capsys: pytest.CaptureFixture[str],
        args: list[str], message: str) -> None:
    world.agent("strict", [{"content": "ok"}], input_schema={
        "type": "object", "properties": {"count": {"type": "integer"}},
        "required": ["count"]})
    assert main(args) == 2
    assert message in capsys.readouterr().err
    assert worker_thread == []
    with context.org_context(world.fx.org), transaction.atomic():
        assert not Run.objects.exists()
