"""The baseline of figure 1: a plain DRF list view with no authentication and no tenancy."""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

from django.db import transaction
from django.db.models import QuerySet
from rest_framework.generics import ListAPIView

from tenants.api import EnvironmentSerializer
from tenants.models import Environment


class BareEnvironmentList(ListAPIView[Environment]):
    """Same serializer, same cursor pagination (project default), same rows as the full view.

    No authentication, no permission check, no org context: it reads through the `bare` alias
    (owner role, RLS not applied) with the org filter written by hand, as an app without
    tenancy would filter by some owner column.

    Served as `bare_environment_list` below: one request transaction on the `bare` alias, as
    `ATOMIC_REQUESTS` gives the full view on `default`, and no transaction on `default`, so
    each request touches one connection (one health check, one BEGIN/COMMIT), as in a
    single-database app.
    """

    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []
    serializer_class = EnvironmentSerializer
    org_id: ClassVar[uuid.UUID | None] = None  # set by the benchmark after seeding

    def get_queryset(self) -> QuerySet[Environment]:
        assert self.org_id is not None, "benchmarks.api_bench sets BareEnvironmentList.org_id"
        return Environment.all_orgs.db_manager("bare").filter(organization_id=self.org_id)


bare_environment_list = transaction.non_atomic_requests(using="default")(
    transaction.atomic(using="bare")(BareEnvironmentList.as_view())
)
