"""Starting runs (idempotency, authorization), fair per-org execution, the reaper, and held
tool calls."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone

from audit.models import AuditEvent
from station.core.errors import AccessDenied, Conflict
from station.runs import engine, lifecycle, services
from station.runs.models import ActiveRun, Run, RunStep, ToolApproval
from station.tools.models import ToolPolicy
from tenants import context
from tenants.authz import Principal
from tests.fixtures import SYSTEM
from tests.runs.conftest import RunWorld


def _start(world: RunWorld, agent: Any, actor: Principal = SYSTEM, **kwargs: Any) -> Run:
    with world.fx.scope(), transaction.atomic():
        run, _ = services.start_run(actor=actor, agent=agent, input={}, **kwargs)
    return run


def _get(world: RunWorld, run: Run) -> Run:
    with world.fx.scope(), transaction.atomic():
        return Run.objects.get(pk=run.pk)


def test_start_writes_a_queued_run_its_index_entry_and_sends_on_commit(
        world: RunWorld, sent: list[tuple[str, str]]) -> None:
    agent = world.agent("starter", [{"content": "ok"}])
    with context.org_context(world.fx.org):
        with transaction.atomic():
            run, created = services.start_run(actor=SYSTEM, agent=agent, input={})
            assert created and sent == []  # nothing sent before commit
        assert sent == [(str(world.fx.org.pk), str(run.pk))]
        with transaction.atomic():
            assert ActiveRun.objects.get(run_id=run.pk).status == Run.QUEUED


def test_a_failed_request_transaction_leaves_no_run_and_sends_nothing(
        world: RunWorld, sent: list[tuple[str, str]]) -> None:
    agent = world.agent("rolled-back", [{"content": "ok"}])
    with context.org_context(world.fx.org):
        with pytest.raises(RuntimeError), transaction.atomic():
            services.start_run(actor=SYSTEM, agent=agent, input={})
            raise RuntimeError("the request failed after starting the run")
        with transaction.atomic():
            assert not Run.objects.exists() and not ActiveRun.objects.exists()
    assert sent == []


def test_same_idempotency_key_gives_the_same_run(world: RunWorld) -> None:
    agent = world.agent("idem", [{"content": "ok"}])
    other = world.agent("other", [{"content": "ok"}])
    first = _start(world, agent, idempotency_key="order-42")
    with world.fx.scope(), transaction.atomic():
        again, created = services.start_run(actor=SYSTEM, agent=agent, input={},
                                            idempotency_key="order-42")
        assert not created and again.pk == first.pk
        with pytest.raises(Conflict, match="another agent"):
            services.start_run(actor=SYSTEM, agent=other, input={},
                               idempotency_key="order-42")
        assert Run.objects.count() == 1


def test_a_viewer_cannot_start_a_run(world: RunWorld) -> None:
    agent = world.agent("guarded", [{"content": "ok"}])
    membership = world.fx.add_member("viewer@runco.example", "viewer")
    with world.fx.scope(), pytest.raises(AccessDenied), transaction.atomic():
        services.start_run(actor=Principal.for_user(membership.user), agent=agent, input={})


def test_an_agent_without_a_published_version_cannot_run(world: RunWorld) -> None:
    agent = world.agent("draft", [{"content": "ok"}])
    with world.fx.scope(), transaction.atomic():
        agent.versions.all().delete()
        with pytest.raises(Conflict, match="no published version"):
            services.start_run(actor=SYSTEM, agent=agent, input={})


# --- fair execution ----------------------------------------------------------------------------


def test_runs_over_the_org_cap_wait_queued_and_go_when_a_slot_frees(
        world: RunWorld, sent: list[tuple[str, str]], settings: Any) -> None:
    settings.RUN_CONCURRENCY_PER_ORG = 1
    agent = world.agent("fair", [{"content": "ok"}])
    first, second = _start(world, agent), _start(world, agent)
    with context.org_context(world.fx.org):
        assert lifecycle.claim(first.pk, "w1") is not None
        assert lifecycle.claim(second.pk, "w2") is None  # over the cap: not claimed
        assert _get(world, second).status == Run.QUEUED
        sent.clear()
        assert lifecycle.complete(first, "w1", Run.SUCCEEDED, output="ok")
    # The freed slot sends the waiting run.
    assert sent == [(str(world.fx.org.pk), str(second.pk))]
    with context.org_context(world.fx.org):
        assert lifecycle.claim(second.pk, "w2") is not None


def test_one_busy_org_does_not_block_another(world: RunWorld, make_org: Any,
                                             settings: Any) -> None:
    settings.RUN_CONCURRENCY_PER_ORG = 1
    busy = world.agent("busy", [{"content": "ok"}])
    held = _start(world, busy)
    waiting = _start(world, busy)
    with context.org_context(world.fx.org):
        assert lifecycle.claim(held.pk, "w1") is not None
        assert lifecycle.claim(waiting.pk, "w2") is None
    other = make_org("calmco")
    from station.agents.models import Agent, AgentVersion
    from tenants.models import Environment

    with other.scope(), transaction.atomic():
        env = Environment.objects.get(slug="dev")
        from station.providers.models import ModelProvider

        ModelProvider.objects.create(organization=other.org, environment=env, name="scripted",
                                     kind="scripted")
        definition = {"provider": "scripted", "model": "m", "instructions": "",
                      "parameters": {"scenario": [{"content": "ok"}]}, "allowed_tools": [],
                      "input_schema": {}, "max_steps": 3, "max_tokens": 1000,
                      "max_seconds": 60, "description": ""}
        agent = Agent.objects.create(organization=other.org, environment=env, name="calm",
                                     latest_version=1, **definition)
        AgentVersion.objects.create(organization=other.org, agent=agent, number=1,
                                    definition=definition, content_hash="x")
        run, _ = services.start_run(actor=SYSTEM, agent=agent, input={})
    with context.org_context(other.org):
        assert lifecycle.claim(run.pk, "w3") is not None


def test_the_reaper_dispatches_queued_runs_that_waited(world: RunWorld,
                                                       sent: list[tuple[str, str]]) -> None:
    agent = world.agent("lost-message", [{"content": "ok"}])
    run = _start(world, agent)
    sent.clear()
    assert lifecycle.reap(now=timezone.now() + timedelta(seconds=5))["dispatched"] == 0
    counts = lifecycle.reap(now=timezone.now() + timedelta(hours=1))
    assert counts["dispatched"] == 1 and sent == [(str(world.fx.org.pk), str(run.pk))]


# --- the reaper ----------------------------------------------------------------------------------


def test_a_run_whose_worker_died_is_retried_then_failed(world: RunWorld,
                                                        settings: Any) -> None:
    settings.RUN_MAX_ATTEMPTS = 2
    agent = world.agent("doomed", [{"content": "ok"}])
    run = _start(world, agent)
    later = timezone.now() + timedelta(seconds=settings.RUN_STALE_SECONDS + 5)
    with context.org_context(world.fx.org):
        assert lifecycle.claim(run.pk, "dead-worker-1") is not None
    # Fresh heartbeat: left alone.
    assert lifecycle.reap()["retried"] == 0
    assert lifecycle.reap(now=later)["retried"] == 1
    assert _get(world, run).status == Run.QUEUED
    with context.org_context(world.fx.org):
        assert lifecycle.claim(run.pk, "dead-worker-2") is not None
        # The first worker wakes up: it no longer holds the run, so it records nothing.
        assert lifecycle.record_step(run, "dead-worker-1", sequence=1, kind="model") is None
        assert not lifecycle.complete(run, "dead-worker-1", Run.SUCCEEDED)
    assert lifecycle.reap(now=later + timedelta(seconds=1))["failed"] == 1
    final = _get(world, run)
    assert final.status == Run.FAILED and "stopped responding 2 times" in final.error
    with world.fx.scope(), transaction.atomic():
        actions = list(AuditEvent.objects.filter(target_id=str(run.pk)).order_by("sequence")
                       .values_list("action", flat=True))
        assert not ActiveRun.objects.filter(run_id=run.pk).exists()
    assert actions == ["run.started", "run.retried", "run.finished"]


def test_a_retried_run_resumes_after_its_last_recorded_step(world: RunWorld) -> None:
    agent = world.agent("resumer", [
        {"tool_calls": [{"name": "clock__get_current_time",
                         "arguments": {"timezone": "UTC"}}]},
        {"content": "final: {last_tool_result}"}], tools=["clock/get_current_time"])
    run = _start(world, agent)
    with context.org_context(world.fx.org):
        claimed = lifecycle.claim(run.pk, "w-dies")
        assert claimed is not None
        # The dead worker had recorded the model step (with its tool call) and nothing else.
        from station.providers.base import Message, ToolCall

        message = Message("assistant", tool_calls=(ToolCall(
            "call-1", "clock__get_current_time", {"timezone": "UTC"}),))
        lifecycle.record_step(claimed, "w-dies", sequence=1, kind="model",
                              output={"message": message.to_json()}, input_tokens=5)
    lifecycle.reap(now=timezone.now() + timedelta(hours=1))
    with context.org_context(world.fx.org):
        engine.execute(run.pk)
    final = _get(world, run)
    with world.fx.scope(), transaction.atomic():
        steps = list(RunStep.objects.filter(run=run).order_by("sequence"))
    assert final.status == Run.SUCCEEDED and final.attempt == 2
    assert [(s.sequence, s.kind, s.attempt) for s in steps] == [
        (1, "model", 1), (2, "tool", 2), (3, "model", 2)]


# --- human approval ------------------------------------------------------------------------------


def _held_run(world: RunWorld) -> Run:
    with world.fx.scope(), transaction.atomic():
        ToolPolicy.objects.create(organization=world.fx.org, environment=world.env,
                                  tool="clock/get_current_time",
                                  effect=ToolPolicy.REQUIRE_APPROVAL)
    agent = world.agent("careful", [
        {"tool_calls": [{"name": "clock__get_current_time",
                         "arguments": {"timezone": "Asia/Tokyo"}}]},
        {"content": "Tokyo: {last_tool_result}"}], tools=["clock/get_current_time"])
    run = _start(world, agent)
    with context.org_context(world.fx.org):
        engine.execute(run.pk)
    return _get(world, run)


def test_an_approval_required_tool_pauses_the_run_until_approved(
        world: RunWorld, sent: list[tuple[str, str]]) -> None:
    run = _held_run(world)
    assert run.status == Run.WAITING_APPROVAL
    with world.fx.scope(), transaction.atomic():
        approval = ToolApproval.objects.get(run=run)
        assert approval.arguments == {"timezone": "Asia/Tokyo"}
        assert ActiveRun.objects.get(run_id=run.pk).status == Run.WAITING_APPROVAL
    sent.clear()
    with world.fx.scope(), transaction.atomic():
        services.decide_approval(actor=SYSTEM, approval=approval, approve=True)
    assert sent == [(str(world.fx.org.pk), str(run.pk))]
    with context.org_context(world.fx.org):
        engine.execute(run.pk)
    final = _get(world, run)
    assert final.status == Run.SUCCEEDED and "Asia/Tokyo" in final.output
    with world.fx.scope(), transaction.atomic():
        actions = list(AuditEvent.objects.filter(target_id=str(run.pk)).order_by("sequence")
                       .values_list("action", flat=True))
    assert actions == ["run.started", "run.tool_call_held", "run.tool_call_approved",
                       "run.finished"]


def test_a_rejected_tool_call_fails_the_run(world: RunWorld) -> None:
    run = _held_run(world)
    with world.fx.scope(), transaction.atomic():
        approval = ToolApproval.objects.get(run=run)
        services.decide_approval(actor=SYSTEM, approval=approval, approve=False,
                                 reason="not on a Sunday")
    final = _get(world, run)
    assert final.status == Run.FAILED and "not on a Sunday" in final.error
    with world.fx.scope(), transaction.atomic():
        assert not RunStep.objects.filter(run=run, kind="tool").exists()
        with pytest.raises(Conflict, match="already rejected"):
            services.decide_approval(actor=SYSTEM, approval=approval, approve=True)


def test_a_member_without_runs_approve_cannot_decide(world: RunWorld) -> None:
    run = _held_run(world)
    developer = world.fx.add_member("dev@runco.example", "developer")
    with world.fx.scope(), transaction.atomic():
        approval = ToolApproval.objects.get(run=run)
        with pytest.raises(AccessDenied):
            services.decide_approval(actor=Principal.for_user(developer.user),
                                     approval=approval, approve=True)
    assert _get(world, run).status == Run.WAITING_APPROVAL
