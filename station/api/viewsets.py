"""The org-scoped base viewset (STYLE.md §3).

It owns queryset, object lookup and permission wiring; subclasses give `scoped_queryset()`
and `permission_map`. Overriding the protected methods is refused when the class is created,
so a new endpoint cannot skip tenancy or authorization by accident.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any, ClassVar

from django.db import models
from rest_framework import serializers, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from station.api.idempotency import idempotent
from station.core.errors import InvalidInput, NotFound
from tenants.authz import Principal, has_permission
from tenants.models import Environment, Organization

PROTECTED = ("get_queryset", "get_object", "get_permissions", "get_authenticators", "initial")


class OrgScopedViewSet(viewsets.GenericViewSet):
    permission_map: ClassVar[dict[str, str]] = {}
    model: ClassVar[type[models.Model] | None] = None
    # How object ids look in URLs: "uuid" or "int". Anything else is a 404, never a 500.
    lookup_kind: ClassVar[str] = "uuid"
    # Response fields never stored by the idempotency layer (show-once secrets).
    idempotency_redact: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in PROTECTED:
            if name in cls.__dict__:
                raise TypeError(f"{cls.__name__} must not override {name}(); "
                                "use scoped_queryset() and permission_map.")

    # --- hooks for subclasses --------------------------------------------------------------
    def scoped_queryset(self) -> models.QuerySet[Any]:
        raise NotImplementedError

    # --- protected ---------------------------------------------------------------------------
    @property
    def principal(self) -> Principal:
        assert isinstance(self.request.auth, Principal)
        return self.request.auth

    @property
    def org(self) -> Organization:
        key = self.principal.api_key
        assert key is not None
        return key.organization

    def get_queryset(self) -> models.QuerySet[Any]:
        if getattr(self, "swagger_fake_view", False) and self.model is not None:
            return self.model._base_manager.none()  # schema generation has no org
        return self.scoped_queryset()

    def get_object(self) -> Any:
        raw = self.kwargs.get(self.lookup_url_kwarg or self.lookup_field)
        try:
            uuid.UUID(str(raw)) if self.lookup_kind == "uuid" else int(str(raw))
        except ValueError as exc:
            raise NotFound(f"No such {self._noun()}: {raw!r} is not a valid id.") from exc
        obj = self.get_queryset().filter(**{self.lookup_field: raw}).first()
        if obj is None:
            raise NotFound(f"No such {self._noun()} in this organization.")
        self.check_object_permissions(self.request, obj)
        return obj

    def _noun(self) -> str:
        return str(self.model._meta.verbose_name) if self.model else "resource"

    def idempotent_create(self, request: Request, create: Any) -> Response:
        return idempotent(request, create, redact=self.idempotency_redact)


def validated(serializer_class: type[serializers.Serializer[Any]], data: Any) -> dict[str, Any]:
    """The request body checked by `serializer_class` (422 with field errors otherwise)."""
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def environments_with_any(principal: Principal, org_id: uuid.UUID,
                          permissions: Iterable[str]) -> list[Environment]:
    """Environments where the principal holds any of `permissions`: an environment-bound key
    sees its own; a member narrowed there to a role without them does not see it."""
    wanted = tuple(permissions)
    return [env for env in Environment.objects.order_by("created_at")
            if any(has_permission(principal, p, org_id, env) for p in wanted)]


class EnvironmentScopedViewSet(OrgScopedViewSet):
    """For resources that live in an environment. An environment's resources are visible to
    a principal holding any of `environment_permissions` there, or the permission of the
    action at hand (a key scoped to `runs.cancel` alone may still cancel)."""

    environment_permissions: ClassVar[tuple[str, ...]] = ()

    def environments(self) -> list[Environment]:
        action = self.permission_map.get(self.action or "")
        wanted = (*self.environment_permissions, *((action,) if action else ()))
        return environments_with_any(self.principal, self.org.pk, wanted)

    def environment_from_slug(self, slug: str) -> Environment:
        env = next((e for e in self.environments() if e.slug == slug), None)
        if env is None:
            raise InvalidInput.field("environment", f"No environment {slug!r} in this "
                                                    "organization.")
        return env

    def in_environments(self, qs: models.QuerySet[Any],
                        field: str = "environment") -> models.QuerySet[Any]:
        """`qs` limited to the visible environments, or to `?environment=<slug>` on a list."""
        if self.action == "list" and (slug := self.request.query_params.get("environment")):
            return qs.filter(**{field: self.environment_from_slug(slug)})
        return qs.filter(**{f"{field}__in": self.environments()})
