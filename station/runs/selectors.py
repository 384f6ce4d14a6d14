"""Reads of runs for the console and the live event stream (STYLE.md §1: reads that are more
than a one-line filter get a name). Call inside an org scope and a transaction; the caller
decides which environments the reader may see."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from django.db.models import QuerySet

from station.runs.models import Run, RunStep, ToolApproval
from tenants.models import Environment


def select_runs(environments: Iterable[Environment], *, agent_id: uuid.UUID | None = None,
                status: str | None = None, trigger: str | None = None) -> QuerySet[Run]:
    """Runs in `environments`, newest first, with what a list row shows."""
    runs = (Run.objects.filter(environment__in=list(environments))
            .select_related("agent", "version", "environment").order_by("-created_at"))
    if agent_id is not None:
        runs = runs.filter(agent_id=agent_id)
    if status:
        runs = runs.filter(status=status)
    if trigger:
        runs = runs.filter(trigger=trigger)
    return runs


def select_run(run_id: uuid.UUID, environments: Iterable[Environment]) -> Run | None:
    return (Run.objects.select_related("agent", "version", "environment")
            .filter(pk=run_id, environment__in=list(environments)).first())


def select_steps_after(run: Run, sequence: int = 0, *, limit: int | None = None
                       ) -> list[RunStep]:
    """The run's steps recorded after `sequence`, in order."""
    steps = RunStep.objects.filter(run=run, sequence__gt=sequence).order_by("sequence")
    return list(steps[:limit] if limit else steps)


def select_pending_approval(run: Run) -> ToolApproval | None:
    """The held call a run waits on (the oldest, if the model asked for several)."""
    return (ToolApproval.objects.filter(run=run, status=ToolApproval.PENDING)
            .order_by("requested_at").first())


def select_pending_approvals(environments: Iterable[Environment]) -> QuerySet[ToolApproval]:
    """Held tool calls waiting for a decision, oldest first (first come, first served)."""
    return (ToolApproval.objects
            .filter(status=ToolApproval.PENDING, environment__in=list(environments),
                    run__status=Run.WAITING_APPROVAL)
            .select_related("run", "run__agent", "run__version", "environment")
            .order_by("requested_at"))


def count_pending_approvals(environments: Iterable[Environment]) -> int:
    envs = list(environments)
    if not envs:
        return 0
    return select_pending_approvals(envs).count()
