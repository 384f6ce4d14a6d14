"""Users, organizations, environments, memberships and API keys."""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from tenants.managers import AllOrgsManager, TenantManager
from tenants.rls import RowLevelSecurity

slug_validator = RegexValidator(
    r"^[a-z0-9](?:[a-z0-9-]{0,48}[a-z0-9])?$",
    "Use 1–50 lowercase letters, digits and hyphens, starting and ending with a letter or digit.",
)


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **extra: Any) -> User:
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra: Any) -> User:
        extra.update(is_staff=True, is_superuser=True)
        return self.create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    """A person. Email is the login; users are global, their access is per organization."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    email = models.EmailField(unique=True)
    name = models.CharField(max_length=200, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    date_joined = models.DateTimeField(default=timezone.now)

    objects: ClassVar[UserManager] = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    def __str__(self) -> str:
        return self.email


class Organization(models.Model):
    """The tenant. Its own row is visible only inside its scope (RLS on `id`)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    slug = models.SlugField(max_length=50, unique=True, validators=[slug_validator])
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now)
    # Members must enrol MFA before any console page of this org (station.accounts.policy).
    require_mfa = models.BooleanField(default=False)

    objects: ClassVar[models.Manager[Organization]] = models.Manager()

    class Meta:
        constraints: ClassVar[list[models.BaseConstraint]] = [
            RowLevelSecurity(name="org_isolation_tenants_organization", field="id"),
        ]

    def __str__(self) -> str:
        return self.slug


class TenantModel(models.Model):
    """Base of every org-owned table: `organization_id` NOT NULL, scoped manager, RLS policy."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")

    objects: ClassVar[TenantManager[Any]] = TenantManager()
    all_orgs: ClassVar[AllOrgsManager[Any]] = AllOrgsManager()

    class Meta:
        abstract = True
        base_manager_name = "all_orgs"
        constraints: ClassVar[list[models.BaseConstraint]] = [
            RowLevelSecurity(name="org_isolation_%(app_label)s_%(class)s"),
        ]


DEFAULT_ENVIRONMENTS = (("dev", "Development"), ("staging", "Staging"), ("prod", "Production"))


class Environment(TenantModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    slug = models.SlugField(max_length=50, validators=[slug_validator])
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantModel.Meta):
        constraints: ClassVar[list[models.BaseConstraint]] = [
            *TenantModel.Meta.constraints,
            models.UniqueConstraint(fields=["organization", "slug"], name="uniq_env_slug_per_org"),
        ]
        ordering = ["created_at"]

    def __str__(self) -> str:
        return self.slug


class Membership(TenantModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantModel.Meta):
        constraints: ClassVar[list[models.BaseConstraint]] = [
            *TenantModel.Meta.constraints,
            models.UniqueConstraint(fields=["organization", "user"], name="uniq_member_per_org"),
        ]
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"{self.role} membership {self.pk}"


class EnvironmentRole(TenantModel):
    """Narrows a membership in one environment (e.g. developer in dev, viewer in prod)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    membership = models.ForeignKey(
        Membership, on_delete=models.CASCADE, related_name="environment_roles"
    )
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="+")
    role = models.CharField(max_length=64)

    class Meta(TenantModel.Meta):
        constraints: ClassVar[list[models.BaseConstraint]] = [
            *TenantModel.Meta.constraints,
            models.UniqueConstraint(
                fields=["membership", "environment"], name="uniq_env_role_per_membership"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.role} in environment {self.environment_id}"


class CustomRole(TenantModel):
    """An org-defined role: a named set of permissions from the registry. Its name is unique in
    the org, never a built-in role's name, and fixed once created (memberships, narrowings,
    keys and IdP group mappings refer to roles by name)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=50, validators=[slug_validator])
    description = models.CharField(max_length=500, blank=True)
    permissions = models.JSONField(default=list)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantModel.Meta):
        constraints: ClassVar[list[models.BaseConstraint]] = [
            *TenantModel.Meta.constraints,
            models.UniqueConstraint(fields=["organization", "name"],
                                    name="uniq_custom_role_name_per_org"),
        ]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ApiKey(TenantModel):
    """An org API key. Only a keyed hash of its secret and its last four characters are kept."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    key_id = models.CharField(max_length=24, unique=True)
    secret_hash = models.CharField(max_length=64)
    last_four = models.CharField(max_length=4)
    scopes = models.JSONField(default=list)
    # The role the key was created with, if any. A custom role's permissions are read at use
    # time (editing the role changes the key); a built-in role's are `scopes`.
    role = models.CharField(max_length=64, blank=True, default="", db_default="")
    environment = models.ForeignKey(
        Environment, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    created_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # "user": bounded by created_by's current permissions (none once that account is gone);
    # "system": made by the platform operator, bounded by its scopes alone.
    creator_kind = models.CharField(
        max_length=8, choices=(("user", "User"), ("system", "Platform operator")), default="user"
    )
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children",
        help_text="The API key that created this one; revoking it revokes this one too.",
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta(TenantModel.Meta):
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.display


    @property
    def display(self) -> str:
        return f"stk_{self.key_id}_…{self.last_four}"

    def is_usable(self, now: Any = None) -> bool:
        now = now or timezone.now()
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or self.expires_at > now


class IdempotencyRecord(TenantModel):
    """The stored response of a creating POST sent with an Idempotency-Key."""

    id = models.BigAutoField(primary_key=True)
    principal = models.CharField(max_length=100)
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    request_hash = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField()
    response_body = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantModel.Meta):
        constraints: ClassVar[list[models.BaseConstraint]] = [
            *TenantModel.Meta.constraints,
            models.UniqueConstraint(
                fields=["organization", "principal", "key"], name="uniq_idempotency_key"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.method} {self.path} [{self.key}]"
