"""A run's state transitions made by the platform itself: dispatch, claim, heartbeat, steps,
holds, finish, and the reaper's retries.

Every transition writes the run row, its `ActiveRun` index entry and (for the ones a person
cares about) an audit event in one transaction, and notifies live listeners on commit.
Fairness: a run is claimed only while its org has fewer than RUN_CONCURRENCY_PER_ORG runs
executing (checked under a per-org advisory lock); a run over the cap stays `queued`, its
task returns at once, and it is dispatched again when one of its org's runs ends (or by the
reaper's sweep), so one busy org never holds the workers other orgs need.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from audit import services as audit
from station.runs import events
from station.runs.models import ActiveRun, Run, RunStep, ToolApproval
from station.runs.signals import run_finished
from tenants import context
from tenants.authz import Principal

log = logging.getLogger(__name__)


def _send(org_id: uuid.UUID, run_id: uuid.UUID) -> None:
    from station.runs.tasks import execute_run

    execute_run.apply_async(kwargs={"org_id": str(org_id), "run_id": str(run_id)})


def dispatch_on_commit(run: Run) -> None:
    org_id, run_id = run.organization_id, run.pk
    transaction.on_commit(lambda: _send(org_id, run_id))


def _lock_org(org_id: uuid.UUID) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 11))", [str(org_id)])


def _index(run: Run, **fields: Any) -> None:
    ActiveRun.objects.filter(run_id=run.pk).update(status=run.status, **fields)


@transaction.atomic
def claim(run_id: uuid.UUID, worker: str) -> Run | None:
    """Take a queued run for this worker, or None: it is not queued any more (a duplicate
    delivery, a cancel) or its org is at its concurrency cap (it stays queued)."""
    # OF self: only the run's row. Without it PostgreSQL also locks the joined agent, version
    # and environment rows, and deadlocks with any run of that agent being created.
    run = (Run.objects.select_for_update(of=("self",))
           .select_related("version", "agent", "environment").filter(pk=run_id).first())
    if run is None or run.status != Run.QUEUED:
        return None
    _lock_org(run.organization_id)
    running = Run.objects.filter(status=Run.RUNNING).count()
    if running >= settings.RUN_CONCURRENCY_PER_ORG:
        # Turned away: its message is spent, so a freed slot must send it again. A queued
        # run's index `heartbeat_at` holds when that happened (None: a message is on its way).
        ActiveRun.objects.filter(run_id=run.pk).update(heartbeat_at=timezone.now())
        return None
    now = timezone.now()
    run.status = Run.RUNNING
    run.attempt += 1
    run.claimed_by = worker[:255]
    run.heartbeat_at = now
    run.started_at = run.started_at or now
    run.save(update_fields=["status", "attempt", "claimed_by", "heartbeat_at", "started_at"])
    _index(run, heartbeat_at=now)
    events.publish(run.pk, "status")
    return run


def heartbeat(run_id: uuid.UUID, worker: str) -> bool | None:
    """Refresh the heartbeat of a run this worker holds. Returns whether a cancel was asked,
    or None when the run is no longer ours (finished, or taken back by the reaper)."""
    with transaction.atomic():
        now = timezone.now()
        updated = Run.objects.filter(pk=run_id, status=Run.RUNNING,
                                     claimed_by=worker[:255]).update(heartbeat_at=now)
        if not updated:
            return None
        ActiveRun.objects.filter(run_id=run_id).update(heartbeat_at=now)
        return bool(Run.objects.filter(pk=run_id).values_list("cancel_requested",
                                                                flat=True).first())


@dataclass(frozen=True)
class Ending:
    """How a run ends when its last step is recorded (`record_step(..., ending=…)`)."""

    status: str
    output: str = ""
    error: str = ""


@transaction.atomic
def record_step(run: Run, worker: str, *, ending: Ending | None = None,
                **fields: Any) -> RunStep | None:
    """Append a step while the run is still this worker's. Returns None (and writes nothing)
    when it is not: the step then belongs to whoever holds the run now. Refreshes `run`'s
    counters and `cancel_requested` as read under the row lock.

    With `ending` (the step is the run's last: a final answer), the run is finished in the
    same transaction, so nothing can happen between the two; a cancel requested meanwhile
    still wins, as it would at the next checkpoint."""
    current = Run.objects.select_for_update().filter(pk=run.pk).first()
    if current is None or current.status != Run.RUNNING or current.claimed_by != worker[:255]:
        return None
    step = RunStep.objects.create(organization_id=run.organization_id, run=current,
                                  attempt=current.attempt, **fields)
    current.step_count = step.sequence
    current.input_tokens += step.input_tokens
    current.output_tokens += step.output_tokens
    current.heartbeat_at = timezone.now()
    current.save(update_fields=["step_count", "input_tokens", "output_tokens", "heartbeat_at"])
    run.step_count, run.input_tokens, run.output_tokens, run.cancel_requested = (
        current.step_count, current.input_tokens, current.output_tokens,
        current.cancel_requested)
    events.publish(run.pk, "step", step.sequence)
    if ending is not None:
        if current.cancel_requested:
            ending = Ending(Run.CANCELLED, error="Cancelled on request.")
        finish(current, ending.status, output=ending.output, error=ending.error)
        run.status = current.status
    return step


@transaction.atomic
def hold_for_approval(run: Run, worker: str, *, tool_call_id: str, server: str, tool: str,
                      arguments: dict[str, Any]) -> ToolApproval | None:
    """Pause the run on a tool call that needs a human decision (the worker is freed)."""
    current = Run.objects.select_for_update().filter(pk=run.pk).first()
    if current is None or current.status != Run.RUNNING or current.claimed_by != worker[:255]:
        return None
    approval, _ = ToolApproval.objects.get_or_create(
        run=current, tool_call_id=tool_call_id,
        defaults={"organization_id": run.organization_id, "environment_id": run.environment_id,
                  "tool_server": server, "tool_name": tool, "arguments": arguments})
    current.status = Run.WAITING_APPROVAL
    current.claimed_by = ""
    current.save(update_fields=["status", "claimed_by"])
    _index(current)
    audit.record("run.tool_call_held", actor=Principal.for_run(run.pk, run.agent.name),
                 target=current, environment_id=run.environment_id,
                 changes={"tool": f"{server}/{tool}", "tool_call_id": tool_call_id})
    events.publish(run.pk, "status")
    _after_slot_freed(run.organization_id)
    return approval


def requeue(run: Run) -> None:
    """Back to `queued` (after an approval, or a retry); sent to a worker on commit. Call
    inside a transaction holding the run's row lock."""
    run.status = Run.QUEUED
    run.claimed_by = ""
    run.save(update_fields=["status", "claimed_by"])
    ActiveRun.objects.filter(run_id=run.pk).update(status=Run.QUEUED, queued_at=timezone.now(),
                                                   heartbeat_at=None)
    events.publish(run.pk, "status")
    dispatch_on_commit(run)


def finish(run: Run, status: str, *, output: str = "", error: str = "",
           actor: Principal | None = None) -> None:
    """Put the run in its final state. Call inside a transaction holding the run's row lock.
    `actor` is whoever ended it (a person cancelling or rejecting); by default the run."""
    assert status in Run.FINAL, status
    run.status = status
    run.output = output
    run.error = error[:10_000]
    run.finished_at = timezone.now()
    run.claimed_by = ""
    run.save(update_fields=["status", "output", "error", "finished_at", "claimed_by"])
    ActiveRun.objects.filter(run_id=run.pk).delete()
    ToolApproval.objects.filter(run=run, status=ToolApproval.PENDING).update(
        status=ToolApproval.REJECTED, reason=f"The run ended ({status}).",
        decided_at=run.finished_at, decided_by_label="system")
    audit.record("run.finished", actor=actor or Principal.for_run(run.pk), target=run,
                 environment_id=run.environment_id,
                 changes={"status": status, "error": run.error[:500],
                          "steps": run.step_count, "input_tokens": run.input_tokens,
                          "output_tokens": run.output_tokens})
    events.publish(run.pk, "status")
    org_id, run_id = str(run.organization_id), str(run.pk)
    transaction.on_commit(lambda: _announce(org_id, run_id, status))
    _after_slot_freed(run.organization_id)


def _announce(org_id: str, run_id: str, status: str) -> None:
    """Tell receivers (outbound webhooks, metering) after commit; one failing receiver must
    not stop the others, nor the worker's own bookkeeping."""
    for receiver, result in run_finished.send_robust(sender=Run, org_id=org_id, run_id=run_id,
                                                      status=status):
        if isinstance(result, Exception):
            log.error("run_finished receiver %s failed",
                      getattr(receiver, "__qualname__", receiver),
                      exc_info=result, extra={"run_id": run_id})


def complete(run: Run, worker: str, status: str, *, output: str = "",
             error: str = "") -> bool:
    """The worker's end of a run it holds. False when the run is no longer this worker's
    (the reaper took it back after a stall), in which case nothing is written."""
    with transaction.atomic():
        current = Run.objects.select_for_update().filter(pk=run.pk).first()
        if current is None or current.status != Run.RUNNING or current.claimed_by != worker[:255]:
            return False
        finish(current, status, output=output, error=error)
        return True


def _after_slot_freed(org_id: uuid.UUID) -> None:
    transaction.on_commit(lambda: dispatch_waiting(org_id, turned_away_only=True))


def dispatch_waiting(org_id: uuid.UUID, *, turned_away_only: bool = False) -> int:
    """Send the oldest queued runs of the org, as many as it has free slots; with
    `turned_away_only` (a slot was freed), only runs a worker turned away at the cap: the
    others still have a message on its way, and re-sending every queued run on every finish
    made each run of a backlog execute ~3 no-op tasks. Duplicate sends stay harmless: a
    claim of a run that is not queued does nothing."""
    cap = settings.RUN_CONCURRENCY_PER_ORG
    with context.org_scope(org_id):  # one transaction (org_scope opens it)
        # After any claim in flight has committed its turn-away, or we could miss it.
        _lock_org(org_id)
        queued = (Run.objects.filter(status=Run.QUEUED, cancel_requested=False)
                  .order_by("created_at").values_list("pk", flat=True))
        if turned_away_only:
            queued = queued.filter(pk__in=ActiveRun.objects.filter(
                organization_id=org_id, status=Run.QUEUED, heartbeat_at__isnull=False)
                .values("run_id"))
        # Most freed slots have nobody turned away waiting: look before counting.
        candidates = list(queued[:cap])
        if not candidates:
            return 0
        free = cap - Run.objects.filter(status=Run.RUNNING).count()
        if free <= 0:
            return 0
        waiting = candidates[:free]
        ActiveRun.objects.filter(run_id__in=waiting).update(heartbeat_at=None)
    for run_id in waiting:
        _send(org_id, run_id)
    return len(waiting)


# --- the reaper (beat, no org scope) ------------------------------------------------------------


def reap(now: datetime | None = None) -> dict[str, int]:
    """Retry or fail runs whose worker stopped heartbeating, and re-send queued runs that
    have waited (for capacity, or because their message was lost). Reads only the platform
    index; every change is made inside the run's own org scope."""
    now = now or timezone.now()
    stale_before = now - timedelta(seconds=settings.RUN_STALE_SECONDS)
    with context.no_org_scope(), transaction.atomic():
        stale = list(ActiveRun.objects.filter(status=Run.RUNNING, heartbeat_at__lt=stale_before)
                     .values_list("organization_id", "run_id"))
        waiting = list(ActiveRun.objects.filter(status=Run.QUEUED, queued_at__lt=stale_before)
                       .values_list("organization_id", flat=True).distinct())
    counts = {"retried": 0, "failed": 0, "dispatched": 0}
    for org_id, run_id in stale:
        outcome = _reap_one(org_id, run_id, stale_before)
        if outcome:
            counts[outcome] += 1
    by_org: dict[uuid.UUID, int] = defaultdict(int)
    for org_id in waiting:
        by_org[org_id] += dispatch_waiting(org_id)
    counts["dispatched"] = sum(by_org.values())
    return counts


def _reap_one(org_id: uuid.UUID, run_id: uuid.UUID, stale_before: datetime) -> str | None:
    with context.org_scope(org_id):  # one transaction (org_scope opens it)
        run = (Run.objects.select_for_update(of=("self",)).select_related("agent")
               .filter(pk=run_id).first())
        if run is None or run.status != Run.RUNNING:
            return None
        if run.heartbeat_at is not None and run.heartbeat_at >= stale_before:
            return None  # it heartbeated since we looked
        actor = Principal.system("run reaper")
        if run.attempt >= settings.RUN_MAX_ATTEMPTS:
            finish(run, Run.FAILED,
                   error=f"The worker executing this run stopped responding "
                         f"{run.attempt} times (last seen {run.heartbeat_at:%Y-%m-%d %H:%M:%S} "
                         f"UTC on {run.claimed_by or 'an unknown worker'}); not retried again.")
            log.warning("run failed after %s attempts", run.attempt, extra={"run_id": str(run_id)})
            return "failed"
        audit.record("run.retried", actor=actor, target=run, environment_id=run.environment_id,
                     changes={"attempt": run.attempt, "worker": run.claimed_by,
                              "last_heartbeat": run.heartbeat_at})
        requeue(run)
        log.warning("run requeued after a stale heartbeat", extra={"run_id": str(run_id)})
        return "retried"
