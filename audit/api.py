from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, serializers
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from audit import selectors
from audit.models import AuditEvent
from station.api.pagination import StationCursorPagination
from station.api.viewsets import OrgScopedViewSet
from station.core.errors import InvalidInput


class AuditEventSerializer(serializers.ModelSerializer[AuditEvent]):
    class Meta:
        model = AuditEvent
        fields = ["id", "sequence", "occurred_at", "actor_type", "actor_id", "actor_label",
                  "action", "target_type", "target_id", "target_label", "environment_id",
                  "changes", "context", "prev_hash", "hash"]
        read_only_fields = fields


class VerificationSerializer(serializers.Serializer[Any]):
    ok = serializers.BooleanField()
    checked = serializers.IntegerField()
    first_bad_id = serializers.IntegerField(allow_null=True)
    first_bad_sequence = serializers.IntegerField(allow_null=True)
    reason = serializers.CharField()


class SequencePagination(StationCursorPagination):
    ordering = "-sequence"


_FILTERS = [
    OpenApiParameter("actor", str, description="Actor id, or part of the actor's label"),
    OpenApiParameter("action", str, description="Action, or its prefix (e.g. `member.`)"),
    OpenApiParameter("since", OpenApiTypes.DATETIME, description="Events at or after"),
    OpenApiParameter("until", OpenApiTypes.DATETIME, description="Events before"),
]


@extend_schema_view(list=extend_schema(parameters=_FILTERS))
class AuditEventViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrgScopedViewSet):
    model = AuditEvent
    serializer_class = AuditEventSerializer
    pagination_class = SequencePagination
    lookup_kind = "int"
    permission_map = {"list": "audit.read", "retrieve": "audit.read", "verification": "audit.read"}

    def scoped_queryset(self) -> QuerySet[AuditEvent]:
        params = self.request.query_params
        times = {}
        for name in ("since", "until"):
            if params.get(name):
                field = serializers.DateTimeField()
                try:
                    times[name] = field.to_internal_value(params[name])
                except serializers.ValidationError as exc:
                    raise InvalidInput.field(name, "Use an ISO 8601 date-time.") from exc
        return selectors.filter_events(
            actor=params.get("actor"), action=params.get("action"), **times
        )

    @extend_schema(responses=VerificationSerializer, summary="Verify this org's hash chain")
    @action(detail=False, methods=["get"])
    def verification(self, request: Request) -> Response:
        result = selectors.verify_current_org()
        return Response({"ok": result.ok, "checked": result.checked,
                         "first_bad_id": result.first_bad_id,
                         "first_bad_sequence": result.first_bad_sequence,
                         "reason": result.reason})
