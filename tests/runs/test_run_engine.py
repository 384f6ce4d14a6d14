"""The run loop against real MCP servers over stdio, with the scripted provider: steps,
tokens, limits, cancel, tool policy, changed tools, misbehaving servers, secret redaction."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest
from django.db import transaction

from audit.models import AuditEvent
from station.core.errors import Conflict
from station.runs import engine, services
from station.runs.models import ActiveRun, Run, RunStep
from station.tools.models import Tool, ToolPolicy
from tenants import context
from tests.fixtures import SYSTEM
from tests.runs.conftest import TOKEN, RunWorld

CLOCK_CALL = {"tool_calls": [{"name": "clock__get_current_time",
                              "arguments": {"timezone": "Europe/Paris"}}]}


def _start(world: RunWorld, agent: Any, data: Any = None, **kwargs: Any) -> Run:
    with world.fx.scope(), transaction.atomic():
        run, _created = services.start_run(actor=SYSTEM, agent=agent, input=data or {},
                                          **kwargs)
    return run


def _reload(world: RunWorld, run: Run) -> tuple[Run, list[RunStep]]:
    with world.fx.scope(), transaction.atomic():
        fresh = Run.objects.get(pk=run.pk)
        return fresh, list(RunStep.objects.filter(run=fresh).order_by("sequence"))


def _execute(world: RunWorld, run: Run) -> tuple[Run, list[RunStep]]:
    with context.org_context(world.fx.org):
        outcome = engine.execute(run.pk)
    assert outcome in Run.FINAL or outcome == Run.WAITING_APPROVAL, outcome
    return _reload(world, run)


def test_a_run_calls_a_real_mcp_tool_and_records_every_step(world: RunWorld) -> None:
    agent = world.agent("clock-bot", [CLOCK_CALL, {"content": "Paris: {last_tool_result}"}],
                        tools=["clock/get_current_time"])
    run = _start(world, agent, {"message": "What time is it in Paris?"})
    assert run.status == Run.QUEUED
    run, steps = _execute(world, run)

    assert run.status == Run.SUCCEEDED, run.error
    assert [s.kind for s in steps] == ["model", "tool", "model"]
    assert [s.sequence for s in steps] == [1, 2, 3]
    tool = steps[1]
    assert (tool.tool_server, tool.tool_name) == ("clock", "get_current_time")
    assert tool.input == {"arguments": {"timezone": "Europe/Paris"}}
    assert "Europe/Paris" in tool.output["text"]  # the real server's answer
    assert tool.error == ""
    assert run.output.startswith("Paris: ") and "Europe/Paris" in run.output
    assert run.input_tokens == sum(s.input_tokens for s in steps) > 0
    assert run.output_tokens == sum(s.output_tokens for s in steps) > 0
    assert run.step_count == 3 and run.attempt == 1 and run.finished_at is not None
    with world.fx.scope(), transaction.atomic():
        assert not ActiveRun.objects.filter(run_id=run.pk).exists()
        actions = list(AuditEvent.objects.filter(target_id=str(run.pk)).order_by("sequence")
                       .values_list("action", flat=True))
    assert actions == ["run.started", "run.finished"]


def test_a_duplicate_delivery_of_a_finished_run_does_nothing(world: RunWorld) -> None:
    agent = world.agent("once", [{"content": "done"}])
    run = _start(world, agent)
    run, steps = _execute(world, run)
    assert run.status == Run.SUCCEEDED
    with context.org_context(world.fx.org):
        assert engine.execute(run.pk) == "skipped"
    again, steps_again = _reload(world, run)
    assert again.finished_at == run.finished_at and len(steps_again) == len(steps) == 1


def test_a_tool_outside_the_allowlist_is_refused_and_the_model_is_told(world: RunWorld) -> None:
    agent = world.agent("sneaky", [
        {"tool_calls": [{"name": "tricky__echo", "arguments": {"message": "hi"}}]},
        {"content": "gave up: {last_tool_result}"}], tools=["clock/get_current_time"])
    run, steps = _execute(world, _start(world, agent))
    assert run.status == Run.SUCCEEDED
    assert "not in this version's allowed tools" in steps[1].error
    assert "not in this version's allowed tools" in run.output


def test_a_tool_denied_by_policy_is_not_offered_nor_callable(world: RunWorld) -> None:
    with world.fx.scope(), transaction.atomic():
        ToolPolicy.objects.create(organization=world.fx.org, environment=world.env,
                                  tool="tricky/*", effect=ToolPolicy.DENY)
    agent = world.agent("denied", [
        {"tool_calls": [{"name": "tricky__echo", "arguments": {"message": "hi"}}]},
        {"content": "ok"}], tools=["tricky/echo"])
    _run, steps = _execute(world, _start(world, agent))
    assert steps[0].input["tools"] == []
    assert "denied by a policy" in steps[1].error


def test_a_changed_tool_is_not_callable_until_reapproved(world: RunWorld) -> None:
    with world.fx.scope(), transaction.atomic():
        Tool.objects.filter(server=world.servers["clock"], name="get_current_time").update(
            status=Tool.CHANGED, content_hash="0" * 64)
    agent = world.agent("stale", [CLOCK_CALL, {"content": "{last_tool_result}"}],
                        tools=["clock/get_current_time"])
    _run, steps = _execute(world, _start(world, agent))
    assert "not callable" in steps[1].error and steps[1].output == {}


def test_a_server_that_changed_a_tool_without_rediscovery_is_refused(world: RunWorld) -> None:
    # The approved definition no longer matches what the live server says.
    with world.fx.scope(), transaction.atomic():
        tool = Tool.objects.get(server=world.servers["tricky"], name="echo")
        tool.approved_hash = tool.content_hash = "f" * 64
        tool.save()
    agent = world.agent("poisoned", [
        {"tool_calls": [{"name": "tricky__echo", "arguments": {"message": "hi"}}]},
        {"content": "{last_tool_result}"}], tools=["tricky/echo"])
    _run, steps = _execute(world, _start(world, agent))
    assert "differently from the approved definition" in steps[1].error


@pytest.mark.parametrize(("tool", "expected"), [
    ("crash", "closed the connection"),
    ("hang", "timed out"),
    ("fail", "Error executing tool fail"),
    ("garbage", "timed out"),
])
def test_a_misbehaving_server_gives_a_clear_step_error_and_the_run_goes_on(
        world: RunWorld, tool: str, expected: str) -> None:
    agent = world.agent(f"victim-{tool}", [
        {"tool_calls": [{"name": f"tricky__{tool}", "arguments": {}}]},
        {"tool_calls": [{"name": "tricky__echo", "arguments": {"message": "still alive"}}]},
        {"content": "{last_tool_result}"}], tools=[f"tricky/{tool}", "tricky/echo"])
    run, steps = _execute(world, _start(world, agent))
    assert run.status == Run.SUCCEEDED, run.error
    failed = steps[1]
    problem = failed.error or failed.output.get("text", "")
    assert expected in problem
    assert failed.error or failed.output.get("is_error")
    # The next call works: reconnected after a crash, the session survives a timeout.
    assert run.output == "still alive"


def test_secret_values_never_reach_steps_output_audit_or_logs(
        world: RunWorld, caplog: pytest.LogCaptureFixture) -> None:
    agent = world.agent("leaky", [
        {"tool_calls": [{"name": "tricky__leak", "arguments": {}}]},
        {"content": "I found: {last_tool_result}"}], tools=["tricky/leak"])
    with caplog.at_level(logging.DEBUG):
        run, steps = _execute(world, _start(world, agent))
    assert caplog.records and TOKEN not in caplog.text
    assert run.status == Run.SUCCEEDED
    assert "the token is [redacted]" in steps[1].output["text"]
    assert TOKEN not in run.output and "[redacted]" in run.output
    with world.fx.scope(), transaction.atomic():
        everything = repr(list(RunStep.objects.filter(run=run).values())) + repr(
            list(AuditEvent.objects.values()))
        reveals = list(AuditEvent.objects.filter(action="secret.revealed",
                                                 actor_id=str(run.pk)))
    assert TOKEN not in everything
    # The reveal is audited with the run that asked.
    assert reveals and reveals[0].actor_type == "run"
    assert str(run.pk) in reveals[0].changes.get("purpose", "") or reveals[0].actor_id


def test_step_limit_fails_the_run(world: RunWorld) -> None:
    loop = [CLOCK_CALL] * 5
    agent = world.agent("loopy", loop, tools=["clock/get_current_time"], max_steps=2)
    run, steps = _execute(world, _start(world, agent))
    assert run.status == Run.FAILED
    assert "limit of 2 model calls" in run.error
    assert sum(1 for s in steps if s.kind == "model") == 2


def test_wall_time_limit_times_the_run_out(world: RunWorld) -> None:
    agent = world.agent("slow", [{"content": "x", "delay_seconds": 3},
                                 {"content": "never"}], max_seconds=1)
    # The first model call outlives the deadline; the run stops at the next checkpoint.
    agent2 = world.agent("slow2", [
        {"tool_calls": [{"name": "clock__get_current_time",
                         "arguments": {"timezone": "UTC"}}], "delay_seconds": 2},
        {"content": "late"}], tools=["clock/get_current_time"], max_seconds=1)
    run, _ = _execute(world, _start(world, agent2))
    assert run.status == Run.TIMED_OUT
    assert "wall-time limit of 1s" in run.error
    del agent


def test_cancel_while_running_takes_effect_within_one_step(world: RunWorld) -> None:
    agent = world.agent("cancellable", [
        {"tool_calls": [{"name": "clock__get_current_time",
                         "arguments": {"timezone": "UTC"}}], "delay_seconds": 2},
        {"content": "should not get here"}], tools=["clock/get_current_time"])
    run = _start(world, agent)

    def cancel_soon() -> None:
        time.sleep(0.8)
        with world.fx.scope(), transaction.atomic():
            services.cancel_run(actor=SYSTEM, run=Run.objects.get(pk=run.pk))

    canceller = threading.Thread(target=cancel_soon)
    canceller.start()
    run, steps = _execute(world, run)
    canceller.join()
    assert run.status == Run.CANCELLED
    assert len(steps) <= 2  # the model step in flight, at most its one tool call


def test_cancel_during_the_final_model_call_wins_over_its_answer(world: RunWorld) -> None:
    # The final answer's step and the run's end are written in one transaction; a cancel
    # requested while the model was answering still ends the run cancelled.
    agent = world.agent("cancel-last", [{"content": "too late", "delay_seconds": 1.5}])
    run = _start(world, agent)

    def cancel_soon() -> None:
        time.sleep(0.5)
        with world.fx.scope(), transaction.atomic():
            services.cancel_run(actor=SYSTEM, run=Run.objects.get(pk=run.pk))

    canceller = threading.Thread(target=cancel_soon)
    canceller.start()
    run, steps = _execute(world, run)
    canceller.join()
    assert run.status == Run.CANCELLED and run.output == ""
    assert [s.kind for s in steps] == ["model"]
    with world.fx.scope(), transaction.atomic():
        actions = list(AuditEvent.objects.filter(target_id=str(run.pk)).order_by("sequence")
                       .values_list("action", flat=True))
        assert not ActiveRun.objects.filter(run_id=run.pk).exists()
    assert actions == ["run.started", "run.cancel_requested", "run.finished"]


def test_cancelling_a_queued_run_is_immediate_and_a_finished_one_is_refused(
        world: RunWorld) -> None:
    agent = world.agent("queued", [{"content": "done"}])
    run = _start(world, agent)
    with world.fx.scope(), transaction.atomic():
        services.cancel_run(actor=SYSTEM, run=Run.objects.get(pk=run.pk))
    run, steps = _reload(world, run)
    assert run.status == Run.CANCELLED and steps == []
    with context.org_context(world.fx.org):
        assert engine.execute(run.pk) == "skipped"
        with pytest.raises(Conflict, match="already finished"), transaction.atomic():
            services.cancel_run(actor=SYSTEM, run=run)
