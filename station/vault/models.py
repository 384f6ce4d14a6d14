"""Vault rows: master-key canaries, per-org data keys, secrets and their versions, variables."""

from __future__ import annotations

import re
import uuid
from typing import ClassVar

from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from tenants.models import Environment, TenantModel, User

# Referenced as ${secret:NAME} / ${var:NAME}: letters, digits and underscores, starting with a
# letter, so a reference can never smuggle braces, colons or whitespace into a config.
NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
name_validator = RegexValidator(
    NAME_PATTERN,
    "Use 1–64 letters, digits and underscores, starting with a letter (e.g. GITHUB_TOKEN).",
)


class KeyCanary(models.Model):
    """A known value wrapped by each master key: proves at start-up that the configured key
    with that id is the one data was encrypted with. Not tenant data (no organization)."""

    kid = models.CharField(max_length=64, primary_key=True)
    wrapped = models.BinaryField()
    created_at = models.DateTimeField(default=timezone.now)
    retired_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.kid


class DataKey(TenantModel):
    """An org's data key, wrapped by a master key. One is active; older ones are kept only
    while secret versions still use them."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    version = models.PositiveIntegerField()
    kid = models.CharField(max_length=64, help_text="Master key that wraps this data key")
    wrapped = models.BinaryField()
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantModel.Meta):
        constraints: ClassVar[list[models.BaseConstraint]] = [
            *TenantModel.Meta.constraints,
            models.UniqueConstraint(
                fields=["organization", "version"], name="uniq_datakey_version"
            ),
            models.UniqueConstraint(
                fields=["organization"], condition=models.Q(active=True),
                name="one_active_datakey_per_org",
            ),
        ]

    def __str__(self) -> str:
        return f"data key v{self.version} ({self.kid})"


class Secret(TenantModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=64, validators=[name_validator])
    current_version = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    updated_by_label = models.CharField(max_length=255, blank=True)
    last_revealed_at = models.DateTimeField(null=True, blank=True)
    last_revealed_for = models.CharField(max_length=255, blank=True)

    class Meta(TenantModel.Meta):
        constraints: ClassVar[list[models.BaseConstraint]] = [
            *TenantModel.Meta.constraints,
            models.UniqueConstraint(fields=["organization", "environment", "name"],
                                    name="uniq_secret_name_per_env"),
        ]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class SecretVersion(TenantModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    secret = models.ForeignKey(Secret, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    data_key = models.ForeignKey(DataKey, on_delete=models.PROTECT, related_name="+")
    nonce = models.BinaryField()
    ciphertext = models.BinaryField()
    fingerprint = models.CharField(max_length=32)
    created_at = models.DateTimeField(default=timezone.now)
    created_by_label = models.CharField(max_length=255, blank=True)

    class Meta(TenantModel.Meta):
        constraints: ClassVar[list[models.BaseConstraint]] = [
            *TenantModel.Meta.constraints,
            models.UniqueConstraint(fields=["secret", "version"], name="uniq_secret_version"),
        ]
        ordering = ["-version"]

    def __str__(self) -> str:
        return f"v{self.version}"


class Variable(TenantModel):
    """Plain (non-secret) configuration for one environment."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=64, validators=[name_validator])
    value = models.TextField(blank=True)
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by_label = models.CharField(max_length=255, blank=True)

    class Meta(TenantModel.Meta):
        constraints: ClassVar[list[models.BaseConstraint]] = [
            *TenantModel.Meta.constraints,
            models.UniqueConstraint(fields=["organization", "environment", "name"],
                                    name="uniq_variable_name_per_env"),
        ]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
