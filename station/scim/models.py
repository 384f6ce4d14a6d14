"""SCIM 2.0 provisioning state per org: bearer tokens, provisioned users and groups.

All are tenant tables (RLS by org). A `ScimUser` is this org's view of a person: the global
`User` row is shared by every org the person belongs to, so everything the IdP may change
(names, externalId, active) lives here, never on `User`. Access itself is the org's
`Membership`: an active ScimUser with a role has one, an inactive one has none.
"""

from __future__ import annotations

import uuid
from typing import ClassVar

from django.db import models
from django.utils import timezone

from tenants.models import TenantModel, User

TOKEN_PREFIX = "scim_"  # noqa: S105 (a prefix, not a secret)


class ScimToken(TenantModel):
    """A bearer token for the org's IdP. Only a keyed hash and the last four are kept."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    token_id = models.CharField(max_length=24, unique=True)
    secret_hash = models.CharField(max_length=64)
    last_four = models.CharField(max_length=4)
    created_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    # Made through the API: the key that made it. The token lives no longer than that key
    # (revoked or expired key: token refused), so a key cannot mint a credential outliving it.
    created_by_key = models.ForeignKey("tenants.ApiKey", null=True, blank=True,
                                       on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta(TenantModel.Meta):
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.display

    @property
    def display(self) -> str:
        return f"{TOKEN_PREFIX}{self.token_id}_…{self.last_four}"

    @property
    def is_usable(self) -> bool:
        if self.revoked_at is not None:
            return False
        return self.created_by_key is None or self.created_by_key.is_usable()


class ScimUser(TenantModel):
    """A person as provisioned by the org's IdP; its id is the SCIM resource id."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    external_id = models.CharField(max_length=500, blank=True)
    given_name = models.CharField(max_length=200, blank=True)
    family_name = models.CharField(max_length=200, blank=True)
    formatted_name = models.CharField(max_length=400, blank=True)
    display_name = models.CharField(max_length=400, blank=True)
    active = models.BooleanField(default=True)
    # True once SCIM decides this member's role (created by SCIM or put in a mapped group).
    # A member who predates SCIM keeps the role an admin gave until then.
    role_managed = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantModel.Meta):
        constraints: ClassVar[list[models.BaseConstraint]] = [
            *TenantModel.Meta.constraints,
            models.UniqueConstraint(fields=["organization", "user"], name="uniq_scim_user_per_org"),
        ]
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"SCIM user {self.pk}"


class ScimGroup(TenantModel):
    """An IdP group pushed by SCIM. Its displayName is what GroupRoleMapping maps to a role."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    display_name = models.CharField(max_length=500)
    external_id = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantModel.Meta):
        constraints: ClassVar[list[models.BaseConstraint]] = [
            *TenantModel.Meta.constraints,
            models.UniqueConstraint(fields=["organization", "display_name"],
                                    name="uniq_scim_group_name_per_org"),
        ]
        ordering = ["display_name", "id"]

    def __str__(self) -> str:
        return self.display_name


class ScimGroupMember(TenantModel):
    """A user in a group (an explicit through table, so it carries RLS like the rest)."""

    id = models.BigAutoField(primary_key=True)
    group = models.ForeignKey(ScimGroup, on_delete=models.CASCADE, related_name="memberships")
    scim_user = models.ForeignKey(ScimUser, on_delete=models.CASCADE, related_name="groups")

    class Meta(TenantModel.Meta):
        constraints: ClassVar[list[models.BaseConstraint]] = [
            *TenantModel.Meta.constraints,
            models.UniqueConstraint(fields=["group", "scim_user"], name="uniq_scim_group_member"),
        ]

    def __str__(self) -> str:
        return f"{self.scim_user_id} in {self.group_id}"
