from __future__ import annotations

from typing import ClassVar

from django.db import models
from django.utils import timezone

from tenants.models import TenantModel


class AuditEvent(TenantModel):
    """One entry of an org's append-only, hash-chained audit log.

    The app role may only INSERT and SELECT (station.core.grants); triggers refuse UPDATE,
    DELETE and TRUNCATE for everyone else (migration 0002). `hash` covers every field and the
    previous event's hash, keyed with AUDIT_CHAIN_KEY, so edits, deletions, reordering and
    forged rows break the chain.
    """

    ACTOR_TYPES = (("user", "User"), ("api_key", "API key"), ("run", "Agent run"),
                   ("system", "System"))

    id = models.BigAutoField(primary_key=True)
    sequence = models.BigIntegerField()
    occurred_at = models.DateTimeField(default=timezone.now)
    actor_type = models.CharField(max_length=16, choices=ACTOR_TYPES)
    actor_id = models.CharField(max_length=64, blank=True)
    actor_label = models.CharField(max_length=255, blank=True)
    action = models.CharField(max_length=100)
    target_type = models.CharField(max_length=100, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_label = models.CharField(max_length=255, blank=True)
    environment_id = models.UUIDField(null=True, blank=True)
    changes = models.JSONField(default=dict)
    context = models.JSONField(default=dict)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    class Meta(TenantModel.Meta):
        constraints: ClassVar[list[models.BaseConstraint]] = [
            *TenantModel.Meta.constraints,
            models.UniqueConstraint(fields=["organization", "sequence"], name="uniq_audit_seq"),
        ]
        indexes: ClassVar[list[models.Index]] = [
            models.Index(fields=["organization", "occurred_at"], name="audit_org_time"),
            models.Index(fields=["organization", "action"], name="audit_org_action"),
            models.Index(fields=["organization", "actor_id"], name="audit_org_actor"),
        ]
        ordering = ["-sequence"]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.action}"
