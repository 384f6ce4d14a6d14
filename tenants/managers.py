"""Managers for tenant models: scoped to the current org, fail closed without one."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from django.db import models

from tenants.context import require_org_id

M = TypeVar("M", bound=models.Model)


class TenantManager(models.Manager[M], Generic[M]):
    """Filters by the org in context; raises NoOrgContext when none is set."""

    def get_queryset(self) -> models.QuerySet[M]:
        return super().get_queryset().filter(organization_id=require_org_id())

    def create(self, **kwargs: Any) -> M:
        kwargs.setdefault("organization_id", require_org_id())
        return super().create(**kwargs)


class AllOrgsManager(models.Manager[M], Generic[M]):
    """Unscoped access. Only for tenants.platform; RLS still applies in the database."""
