"""Model provider connections, per environment: which LLM API an agent talks to, and how."""

from __future__ import annotations

import uuid
from typing import ClassVar

from django.db import models
from django.utils import timezone

from station.agents.models import agent_name_validator
from tenants.models import Environment, TenantModel


class ModelProvider(TenantModel):
    """A connection to an LLM API. Agents name it (`provider`) and pick a model on it.

    `api_key` is stored as a `${secret:NAME}` reference (never a value) and `base_url` may
    use `${var:NAME}`; both are resolved only in the worker, for the run that asks.
    """

    OPENAI, ANTHROPIC, SCRIPTED = "openai", "anthropic", "scripted"
    KINDS = ((OPENAI, "OpenAI-compatible chat completions"), (ANTHROPIC, "Anthropic Messages"),
             (SCRIPTED, "Scripted (replays a scenario; demos and tests)"))

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=63, validators=[agent_name_validator])
    kind = models.CharField(max_length=16, choices=KINDS)
    base_url = models.CharField(max_length=2000, blank=True)
    api_key = models.CharField(max_length=200, blank=True)
    timeout_seconds = models.PositiveIntegerField(default=60)
    max_retries = models.PositiveIntegerField(default=2)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantModel.Meta):
        constraints: ClassVar[list[models.BaseConstraint]] = [
            *TenantModel.Meta.constraints,
            models.UniqueConstraint(fields=["organization", "environment", "name"],
                                    name="uniq_provider_name_per_env"),
        ]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
