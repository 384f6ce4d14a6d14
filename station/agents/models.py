"""Agents (editable, per environment) and their published, immutable versions."""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from tenants.models import Environment, TenantModel

agent_name_validator = RegexValidator(
    r"^[a-z][a-z0-9-]{0,62}$",
    "Use 1–63 lowercase letters, digits and hyphens, starting with a letter (e.g. triage-bot).",
)

# The fields a version freezes, in the order dotprompt export writes them.
DEFINITION_FIELDS = ("description", "instructions", "provider", "model", "parameters",
                     "allowed_tools", "input_schema", "max_steps", "max_tokens", "max_seconds")


class Agent(TenantModel):
    """The working copy of an agent. Runs never use it directly: publishing freezes its
    definition into an AgentVersion, and runs point at a version."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=63, validators=[agent_name_validator])
    description = models.CharField(max_length=500, blank=True)
    instructions = models.TextField(blank=True, help_text="The system prompt")
    # The name of a model provider connection in the same environment, and the model there.
    provider = models.CharField(max_length=64)
    model = models.CharField(max_length=200)
    parameters = models.JSONField(default=dict, blank=True)
    # "server/tool" names; default deny: a tool not listed cannot be called.
    allowed_tools = models.JSONField(default=list, blank=True)
    input_schema = models.JSONField(default=dict, blank=True)
    max_steps = models.PositiveIntegerField(default=10)
    max_tokens = models.PositiveIntegerField(default=100_000)
    max_seconds = models.PositiveIntegerField(default=300)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    latest_version = models.PositiveIntegerField(default=0)

    class Meta(TenantModel.Meta):
        constraints: ClassVar[list[models.BaseConstraint]] = [
            *TenantModel.Meta.constraints,
            models.UniqueConstraint(fields=["organization", "environment", "name"],
                                    name="uniq_agent_name_per_env"),
        ]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def definition(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in DEFINITION_FIELDS}


class AgentVersion(TenantModel):
    """A published agent definition. Never updated after creation."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    definition = models.JSONField()
    content_hash = models.CharField(max_length=64)
    note = models.CharField(max_length=500, blank=True)
    published_at = models.DateTimeField(default=timezone.now)
    published_by_label = models.CharField(max_length=255, blank=True)

    class Meta(TenantModel.Meta):
        constraints: ClassVar[list[models.BaseConstraint]] = [
            *TenantModel.Meta.constraints,
            models.UniqueConstraint(fields=["agent", "number"], name="uniq_agent_version_number"),
        ]
        ordering = ["agent", "-number"]

    def __str__(self) -> str:
        return f"{self.agent.name} v{self.number}"
