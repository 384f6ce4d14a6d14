"""Run writes made by people, keys, schedules and webhooks (STYLE.md §1: authorize, write,
audit): start a run, cancel it, decide a held tool call.

The worker's own transitions (claim, steps, finish, retry) live in `lifecycle.py`.
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from audit import services as audit
from station.agents.models import Agent, AgentVersion
from station.agents.selectors import latest_version
from station.agents.services import validate_input
from station.core.errors import Conflict, InvalidInput
from station.runs import lifecycle
from station.runs.models import ActiveRun, Run, ToolApproval
from tenants.authz import Principal, authorize

TRIGGERS = frozenset(value for value, _ in Run.TRIGGERS)


def _latest_version(agent: Agent) -> AgentVersion:
    version = latest_version(agent)
    if version is None:
        raise Conflict(f"Agent {agent.name!r} has no published version yet; publish it "
                       "before running it.")
    return version


@transaction.atomic
def start_run(*, actor: Principal, agent: Agent, input: Any, trigger: str = "api",
              trigger_ref: str = "", idempotency_key: str = "",
              version: AgentVersion | None = None) -> tuple[Run, bool]:
    """Queue a run of `agent`'s latest published version (or `version`). The Run row is
    written in the caller's transaction and the task sent when it commits. With an
    idempotency key, the same key returns the same run (created=False)."""
    authorize(actor, "agents.run", agent.organization_id, agent.environment)
    if trigger not in TRIGGERS:
        raise InvalidInput.field("trigger", f"Unknown trigger {trigger!r}.")
    if len(idempotency_key) > 255:
        raise InvalidInput.field("idempotency_key", "At most 255 characters.")
    if idempotency_key:
        existing = Run.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            if existing.agent_id != agent.pk:
                raise Conflict("This idempotency key was already used to start a run of "
                               "another agent.")
            return existing, False
    if version is None:
        version = _latest_version(agent)
    elif version.agent_id != agent.pk:
        raise InvalidInput.field("version", "That version belongs to another agent.")
    if input is None:
        input = {}
    validate_input(version, input)  # InvalidInput naming each problem's JSON path
    data = input
    run = Run(organization_id=agent.organization_id, environment=agent.environment,
              agent=agent, version=version, input=data, trigger=trigger,
              trigger_ref=trigger_ref[:64], created_by_label=actor.label[:255],
              idempotency_key=idempotency_key)
    try:
        with transaction.atomic():
            run.save(force_insert=True)
    except IntegrityError:
        # A concurrent request with the same key won the race: answer with its run.
        existing = Run.objects.filter(idempotency_key=idempotency_key).first()
        if existing is None:
            raise
        return existing, False
    ActiveRun.objects.create(run_id=run.pk, organization_id=run.organization_id,
                             status=Run.QUEUED, queued_at=run.created_at)
    audit.record("run.started", actor=actor, target=run,
                 target_label=f"{agent.name} v{version.number}",
                 environment_id=agent.environment_id,
                 changes={"agent": agent.name, "version": version.number,
                          "trigger": trigger, "trigger_ref": trigger_ref})
    lifecycle.dispatch_on_commit(run)
    return run, True


@transaction.atomic
def cancel_run(*, actor: Principal, run: Run) -> Run:
    """Cancel a run: at once when it is queued or waiting for an approval; when it is
    running, the worker stops at the next step boundary (within one step)."""
    authorize(actor, "runs.cancel", run.organization_id, run.environment)
    run = Run.objects.select_for_update().get(pk=run.pk)
    if run.is_final:
        raise Conflict(f"The run already finished ({run.get_status_display().lower()}); "
                       "there is nothing to cancel.")
    if run.cancel_requested:
        return run
    run.cancel_requested = True
    run.save(update_fields=["cancel_requested"])
    audit.record("run.cancel_requested", actor=actor, target=run,
                 environment_id=run.environment_id, changes={"status": run.status})
    if run.status in (Run.QUEUED, Run.WAITING_APPROVAL):
        lifecycle.finish(run, Run.CANCELLED, error=f"Cancelled by {actor.label}.", actor=actor)
    return run


@transaction.atomic
def decide_approval(*, actor: Principal, approval: ToolApproval, approve: bool,
                    reason: str = "") -> ToolApproval:
    """Approve (the run resumes) or reject (the run fails) a held tool call."""
    authorize(actor, "runs.approve", approval.organization_id, approval.environment)
    approval = ToolApproval.objects.select_for_update().get(pk=approval.pk)
    if approval.status != ToolApproval.PENDING:
        raise Conflict(f"This tool call was already {approval.status} by "
                       f"{approval.decided_by_label}.")
    if len(reason) > 1000:
        raise InvalidInput.field("reason", "At most 1000 characters.")
    run = Run.objects.select_for_update().get(pk=approval.run_id)
    if run.is_final:
        raise Conflict(f"The run already finished ({run.get_status_display().lower()}).")
    approval.status = ToolApproval.APPROVED if approve else ToolApproval.REJECTED
    approval.reason = reason
    approval.decided_at = timezone.now()
    approval.decided_by_label = actor.label[:255]
    approval.save(update_fields=["status", "reason", "decided_at", "decided_by_label"])
    tool = f"{approval.tool_server}/{approval.tool_name}"
    audit.record("run.tool_call_approved" if approve else "run.tool_call_rejected",
                 actor=actor, target=run, environment_id=run.environment_id,
                 changes={"tool": tool, "tool_call_id": approval.tool_call_id,
                          "reason": reason})
    if approve:
        if not ToolApproval.objects.filter(run=run, status=ToolApproval.PENDING).exists():
            lifecycle.requeue(run)
    else:
        why = f"The call to {tool} was rejected by {actor.label}"
        lifecycle.finish(run, Run.FAILED, error=f"{why}: {reason}" if reason else f"{why}.",
                         actor=actor)
    return approval
