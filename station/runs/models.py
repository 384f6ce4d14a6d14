"""Runs of agent versions, their recorded steps, held tool calls, and the platform index of
runs in flight (the one cross-org table the reaper and the fair scheduler read)."""

from __future__ import annotations

import uuid
from typing import ClassVar

from django.db import models
from django.utils import timezone

from station.agents.models import Agent, AgentVersion
from tenants.models import Environment, TenantModel


class Run(TenantModel):
    QUEUED, RUNNING, WAITING_APPROVAL = "queued", "running", "waiting_approval"
    SUCCEEDED, FAILED, CANCELLED, TIMED_OUT = "succeeded", "failed", "cancelled", "timed_out"
    STATUSES = ((QUEUED, "Queued"), (RUNNING, "Running"),
                (WAITING_APPROVAL, "Waiting for approval"), (SUCCEEDED, "Succeeded"),
                (FAILED, "Failed"), (CANCELLED, "Cancelled"), (TIMED_OUT, "Timed out"))
    ACTIVE = frozenset({QUEUED, RUNNING, WAITING_APPROVAL})
    FINAL = frozenset({SUCCEEDED, FAILED, CANCELLED, TIMED_OUT})
    TRIGGERS = (("api", "API"), ("console", "Console"), ("cli", "CLI"),
                ("schedule", "Schedule"), ("webhook", "Webhook"))

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="+")
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="runs")
    version = models.ForeignKey(AgentVersion, on_delete=models.CASCADE, related_name="runs")
    status = models.CharField(max_length=16, choices=STATUSES, default=QUEUED)
    input = models.JSONField(default=dict, blank=True)
    output = models.TextField(blank=True)
    error = models.TextField(blank=True)
    trigger = models.CharField(max_length=10, choices=TRIGGERS, default="api")
    trigger_ref = models.CharField(max_length=64, blank=True)
    created_by_label = models.CharField(max_length=255, blank=True)
    idempotency_key = models.CharField(max_length=255, blank=True)
    attempt = models.PositiveIntegerField(default=0)
    cancel_requested = models.BooleanField(default=False)
    claimed_by = models.CharField(max_length=255, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    step_count = models.PositiveIntegerField(default=0)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)

    class Meta(TenantModel.Meta):
        constraints: ClassVar[list[models.BaseConstraint]] = [
            *TenantModel.Meta.constraints,
            models.UniqueConstraint(fields=["organization", "idempotency_key"],
                                    condition=~models.Q(idempotency_key=""),
                                    name="uniq_run_idempotency_key"),
        ]
        indexes: ClassVar[list[models.Index]] = [
            models.Index(fields=["organization", "status", "created_at"],
                         name="run_org_status_created"),
            models.Index(fields=["agent", "-created_at"], name="run_agent_created"),
        ]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"run {self.id}"

    @property
    def is_final(self) -> bool:
        return self.status in self.FINAL

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class RunStep(TenantModel):
    """One recorded step. `(run, sequence)` is unique, so a step can never be recorded twice,
    even when a run is retried after its worker died."""

    MODEL, TOOL = "model", "tool"
    KINDS = ((MODEL, "Model call"), (TOOL, "Tool call"))

    id = models.BigAutoField(primary_key=True)
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="steps")
    sequence = models.PositiveIntegerField()
    kind = models.CharField(max_length=8, choices=KINDS)
    # Model steps: the request summary and the assistant message; tool steps: the call and
    # its result. Secret values are redacted before anything is stored.
    input = models.JSONField(default=dict, blank=True)
    output = models.JSONField(default=dict, blank=True)
    tool_server = models.CharField(max_length=64, blank=True)
    tool_name = models.CharField(max_length=200, blank=True)
    tool_call_id = models.CharField(max_length=200, blank=True)
    error = models.TextField(blank=True)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    latency_ms = models.PositiveIntegerField(default=0)
    attempt = models.PositiveIntegerField(default=1)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantModel.Meta):
        constraints: ClassVar[list[models.BaseConstraint]] = [
            *TenantModel.Meta.constraints,
            models.UniqueConstraint(fields=["run", "sequence"], name="uniq_run_step_sequence"),
        ]
        ordering = ["run", "sequence"]

    def __str__(self) -> str:
        return f"step {self.sequence} of run {self.run_id}"


class ToolApproval(TenantModel):
    """A tool call held for a human decision. One per (run, tool call)."""

    PENDING, APPROVED, REJECTED = "pending", "approved", "rejected"
    STATUSES = ((PENDING, "Pending"), (APPROVED, "Approved"), (REJECTED, "Rejected"))

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="approvals")
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="+")
    tool_call_id = models.CharField(max_length=200)
    tool_server = models.CharField(max_length=64)
    tool_name = models.CharField(max_length=200)
    arguments = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=STATUSES, default=PENDING)
    reason = models.CharField(max_length=1000, blank=True)
    requested_at = models.DateTimeField(default=timezone.now)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by_label = models.CharField(max_length=255, blank=True)

    class Meta(TenantModel.Meta):
        constraints: ClassVar[list[models.BaseConstraint]] = [
            *TenantModel.Meta.constraints,
            models.UniqueConstraint(fields=["run", "tool_call_id"],
                                    name="uniq_approval_per_tool_call"),
        ]
        ordering = ["-requested_at"]

    def __str__(self) -> str:
        return f"{self.tool_server}/{self.tool_name} in run {self.run_id}"


class ActiveRun(models.Model):
    """Platform index of runs not yet final: ids and timestamps only, no tenant data.

    Deliberately not tenant-scoped: the reaper (stale heartbeats) and the fair dispatcher
    (queued runs waiting for their org's capacity) run from beat without an org and must see
    every org's runs in flight. Each row is written in the same transaction as its run's
    status change, so the index never disagrees with the runs table.
    """

    run_id = models.UUIDField(primary_key=True)
    organization_id = models.UUIDField(db_index=True)
    status = models.CharField(max_length=16)
    queued_at = models.DateTimeField(default=timezone.now)
    # Running: the worker's last heartbeat. Queued: when a worker last turned the run away at
    # its org's cap (None while its message is on its way); a freed slot re-sends those.
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes: ClassVar[list[models.Index]] = [
            models.Index(fields=["status", "heartbeat_at"], name="activerun_status_heartbeat"),
        ]

    def __str__(self) -> str:
        return f"active run {self.run_id}"
