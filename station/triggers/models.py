"""Run triggers: cron schedules, signed inbound webhooks, signed outbound webhooks and their
delivery log."""

from __future__ import annotations

import uuid
from typing import ClassVar

from django.db import models
from django.utils import timezone as dj_timezone

from station.agents.models import Agent
from station.runs.models import Run
from station.vault.models import DataKey
from tenants.models import Environment, TenantModel


class Schedule(TenantModel):
    """Runs `agent` with `input` whenever the cron expression fires in `timezone`.

    Beat cannot read this table (it has no org scope and RLS is forced), so each schedule owns
    one django-celery-beat PeriodicTask, named `periodic_task_name`, kept in sync in the same
    transaction as every write here; the task carries only `{org_id, schedule_id}`.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="+")
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="schedules")
    name = models.CharField(max_length=100, blank=True)
    cron = models.CharField(max_length=120, help_text="Five fields: minute hour day month "
                                                      "weekday, e.g. 0 9 * * 1-5")
    timezone = models.CharField(max_length=64, default="UTC", help_text="IANA name")
    input = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_run_id = models.UUIDField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    next_run_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=dj_timezone.now)
    updated_at = models.DateTimeField(default=dj_timezone.now)

    class Meta(TenantModel.Meta):
        ordering = ["created_at"]
        indexes: ClassVar[list[models.Index]] = [
            models.Index(fields=["agent", "created_at"], name="schedule_agent_created"),
        ]

    def __str__(self) -> str:
        return self.name or f"{self.cron} ({self.timezone})"

    @property
    def periodic_task_name(self) -> str:
        return f"station.schedule:{self.pk}"


class SealedSecret(models.Model):
    """A show-once signing secret kept encrypted under the org's vault data key (AES-256-GCM,
    bound to org + webhook kind + webhook id): it must be recoverable to verify and to sign.
    """

    secret_data_key = models.ForeignKey(DataKey, on_delete=models.PROTECT, related_name="+")
    secret_nonce = models.BinaryField()
    secret_ciphertext = models.BinaryField()
    secret_last_four = models.CharField(max_length=4)
    secret_rotated_at = models.DateTimeField(default=dj_timezone.now)

    class Meta:
        abstract = True


class InboundWebhook(TenantModel, SealedSecret):
    """`POST /hooks/<id>` with an HMAC signature starts a run of `agent` with the JSON body."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="+")
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="inbound_webhooks")
    name = models.CharField(max_length=100, blank=True)
    enabled = models.BooleanField(default=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=dj_timezone.now)
    updated_at = models.DateTimeField(default=dj_timezone.now)

    class Meta(TenantModel.Meta):
        ordering = ["created_at"]

    def __str__(self) -> str:
        return self.name or f"inbound webhook {self.pk}"


class InboundSignature(TenantModel):
    """Signatures accepted recently, so a captured request cannot be replayed inside the
    timestamp window. Rows older than the window are pruned as new ones arrive."""

    id = models.BigAutoField(primary_key=True)
    webhook = models.ForeignKey(InboundWebhook, on_delete=models.CASCADE, related_name="+")
    signature = models.CharField(max_length=64)
    seen_at = models.DateTimeField(default=dj_timezone.now)

    class Meta(TenantModel.Meta):
        constraints: ClassVar[list[models.BaseConstraint]] = [
            *TenantModel.Meta.constraints,
            models.UniqueConstraint(fields=["webhook", "signature"],
                                    name="uniq_inbound_signature"),
        ]
        indexes: ClassVar[list[models.Index]] = [
            models.Index(fields=["webhook", "seen_at"], name="inbound_sig_seen"),
        ]

    def __str__(self) -> str:
        return f"signature {self.signature[:8]}…"


EVENTS = (
    ("run.succeeded", "Run succeeded"),
    ("run.failed", "Run failed"),
    ("run.cancelled", "Run cancelled"),
    ("run.timed_out", "Run timed out"),
)
EVENT_NAMES = tuple(name for name, _ in EVENTS)


class OutboundWebhook(TenantModel, SealedSecret):
    """POSTs a signed JSON event to `url` when a run of `agent` (or of any agent of the
    environment, when `agent` is empty) finishes with one of `events`."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="+")
    agent = models.ForeignKey(Agent, null=True, blank=True, on_delete=models.CASCADE,
                              related_name="outbound_webhooks")
    name = models.CharField(max_length=100, blank=True)
    url = models.CharField(max_length=2000)
    events = models.JSONField(default=list)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=dj_timezone.now)
    updated_at = models.DateTimeField(default=dj_timezone.now)

    class Meta(TenantModel.Meta):
        ordering = ["created_at"]

    def __str__(self) -> str:
        return self.name or self.url


class WebhookDelivery(TenantModel):
    """One event for one outbound webhook: every attempt is counted and its outcome kept."""

    PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
    STATUSES = ((PENDING, "Pending"), (DELIVERED, "Delivered"), (FAILED, "Failed"))

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    webhook = models.ForeignKey(OutboundWebhook, on_delete=models.CASCADE,
                                related_name="deliveries")
    run = models.ForeignKey(Run, null=True, on_delete=models.SET_NULL, related_name="+")
    event = models.CharField(max_length=32)
    payload = models.JSONField(default=dict)
    status = models.CharField(max_length=10, choices=STATUSES, default=PENDING)
    attempts = models.PositiveIntegerField(default=0)
    response_code = models.PositiveIntegerField(null=True, blank=True)
    response_body = models.TextField(blank=True, help_text="First 1 KiB of the last answer")
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=dj_timezone.now)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta(TenantModel.Meta):
        constraints: ClassVar[list[models.BaseConstraint]] = [
            *TenantModel.Meta.constraints,
            # run_finished may be sent twice (at-least-once): one delivery per event.
            models.UniqueConstraint(fields=["webhook", "run", "event"],
                                    name="uniq_delivery_per_run_event"),
        ]
        indexes: ClassVar[list[models.Index]] = [
            models.Index(fields=["webhook", "-created_at"], name="delivery_webhook_created"),
        ]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.event} → {self.webhook_id}"


class DeliveryAttempt(TenantModel):
    """The log line of one attempt of a delivery."""

    id = models.BigAutoField(primary_key=True)
    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE,
                                 related_name="attempt_log")
    number = models.PositiveIntegerField()
    at = models.DateTimeField(default=dj_timezone.now)
    response_code = models.PositiveIntegerField(null=True, blank=True)
    response_body = models.TextField(blank=True)
    error = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta(TenantModel.Meta):
        constraints: ClassVar[list[models.BaseConstraint]] = [
            *TenantModel.Meta.constraints,
            models.UniqueConstraint(fields=["delivery", "number"], name="uniq_delivery_attempt"),
        ]
        ordering = ["delivery", "number"]

    def __str__(self) -> str:
        return f"attempt {self.number}"
