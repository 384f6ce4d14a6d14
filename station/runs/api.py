"""REST endpoints for runs (start, list with filters, detail with steps, cancel) and held
tool calls (list, approve, reject).

A run is started with 202: the Run row (`queued`) is written in the request's transaction and
the worker picks it up after commit. `Idempotency-Key` makes a start safe to retry: the same
key answers with the same run.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from station.agents.models import Agent
from station.api.idempotency import HEADER as IDEMPOTENCY_HEADER
from station.api.pagination import StationCursorPagination
from station.api.viewsets import EnvironmentScopedViewSet
from station.core.errors import InvalidInput
from station.runs import services
from station.runs.models import Run, RunStep, ToolApproval

# --- serializers -------------------------------------------------------------------------------


class RunStepSerializer(serializers.ModelSerializer[RunStep]):
    class Meta:
        model = RunStep
        fields = ["sequence", "kind", "tool_server", "tool_name", "tool_call_id", "input",
                  "output", "error", "input_tokens", "output_tokens", "latency_ms", "attempt",
                  "started_at", "finished_at"]
        read_only_fields = fields


class RunSerializer(serializers.ModelSerializer[Run]):
    environment = serializers.CharField(source="environment.slug", read_only=True)
    agent = serializers.UUIDField(source="agent_id", read_only=True)
    agent_name = serializers.CharField(source="agent.name", read_only=True)
    version = serializers.IntegerField(source="version.number", read_only=True)

    class Meta:
        model = Run
        fields = ["id", "environment", "agent", "agent_name", "version", "status", "input",
                  "output", "error", "trigger", "trigger_ref", "created_by_label",
                  "idempotency_key", "attempt", "cancel_requested", "created_at", "started_at",
                  "finished_at", "heartbeat_at", "step_count", "input_tokens", "output_tokens"]
        read_only_fields = fields


class RunDetailSerializer(RunSerializer):
    steps = RunStepSerializer(many=True, read_only=True)

    class Meta(RunSerializer.Meta):
        fields = [*RunSerializer.Meta.fields, "steps"]
        read_only_fields = fields


class RunCreateSerializer(serializers.Serializer[Any]):
    agent = serializers.UUIDField(required=False, help_text="The agent's id")
    environment = serializers.SlugField(required=False,
                                        help_text="With agent_name: the environment's slug")
    agent_name = serializers.CharField(required=False, max_length=63,
                                       help_text="With environment: the agent's name")
    input = serializers.JSONField(required=False, default=dict,
                                  help_text="Validated against the agent's input schema")


class ToolApprovalSerializer(serializers.ModelSerializer[ToolApproval]):
    run = serializers.UUIDField(source="run_id", read_only=True)
    environment = serializers.CharField(source="environment.slug", read_only=True)
    agent_name = serializers.CharField(source="run.agent.name", read_only=True)

    class Meta:
        model = ToolApproval
        fields = ["id", "run", "environment", "agent_name", "tool_server", "tool_name",
                  "tool_call_id", "arguments", "status", "reason", "requested_at",
                  "decided_at", "decided_by_label"]
        read_only_fields = fields


class DecisionSerializer(serializers.Serializer[Any]):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=1000,
                                   default="")


# --- shared --------------------------------------------------------------------------------------


class _RunsViewSet(EnvironmentScopedViewSet):
    pagination_class = StationCursorPagination
    environment_permissions = ("runs.read",)

    def _choice(self, name: str, value: str, choices: Any) -> str:
        allowed = [c for c, _ in choices]
        if value not in allowed:
            raise InvalidInput.field(name, "Choose one of: " + ", ".join(allowed) + ".")
        return value


class ApprovalPagination(StationCursorPagination):
    ordering = ("-requested_at", "-id")


_FILTERS = [
    OpenApiParameter("environment", str, description="Only runs in this environment (slug)"),
    OpenApiParameter("agent", uuid.UUID, description="Only runs of this agent"),
    OpenApiParameter("status", str, enum=[s for s, _ in Run.STATUSES]),
    OpenApiParameter("trigger", str, enum=[t for t, _ in Run.TRIGGERS]),
]


@extend_schema_view(
    list=extend_schema(parameters=_FILTERS, summary="List runs, newest first"),
    retrieve=extend_schema(responses=RunDetailSerializer,
                           summary="A run with its recorded steps"),
    create=extend_schema(
        request=RunCreateSerializer, responses={202: RunSerializer, 200: RunSerializer},
        parameters=[OpenApiParameter(IDEMPOTENCY_HEADER, str, OpenApiParameter.HEADER,
                                     description="Same key → the same run (200 on a repeat)")],
        summary="Start a run of the agent's latest published version (202, queued)"),
    cancel=extend_schema(request=None, responses=RunSerializer,
                         summary="Cancel a run (immediate when queued or held; within one "
                                 "step when running; 409 when finished)"),
)
class RunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, _RunsViewSet):
    model = Run
    serializer_class = RunSerializer
    http_method_names = ["get", "post"]
    permission_map = {"list": "runs.read", "retrieve": "runs.read", "create": "agents.run",
                      "cancel": "runs.cancel"}

    def scoped_queryset(self) -> QuerySet[Run]:
        qs = Run.objects.select_related("environment", "agent", "version").filter(
            environment__in=self.environments())
        if self.action == "retrieve":
            return qs.prefetch_related("steps")
        if self.action != "list":
            return qs
        params = self.request.query_params
        if slug := params.get("environment"):
            qs = qs.filter(environment=self.environment_from_slug(slug))
        if agent := params.get("agent"):
            try:
                uuid.UUID(agent)
            except ValueError as exc:
                raise InvalidInput.field("agent", f"{agent!r} is not an agent id.") from exc
            qs = qs.filter(agent_id=agent)
        if run_status := params.get("status"):
            qs = qs.filter(status=self._choice("status", run_status, Run.STATUSES))
        if trigger := params.get("trigger"):
            qs = qs.filter(trigger=self._choice("trigger", trigger, Run.TRIGGERS))
        return qs

    def get_serializer_class(self) -> type[serializers.BaseSerializer[Any]]:
        return RunDetailSerializer if self.action == "retrieve" else RunSerializer

    def _agent(self, data: dict[str, Any]) -> Agent:
        agents = Agent.objects.select_related("environment")
        if data.get("agent"):
            agent = agents.filter(pk=data["agent"]).first()
        elif data.get("environment") and data.get("agent_name"):
            agent = agents.filter(environment__slug=data["environment"],
                                  name=data["agent_name"]).first()
        else:
            raise InvalidInput.field("agent", "Give the agent's id, or environment and "
                                              "agent_name.")
        if agent is None:
            raise InvalidInput.field("agent", "No such agent in this organization.")
        return agent

    def create(self, request: Request) -> Response:
        serializer = RunCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        key = request.headers.get(IDEMPOTENCY_HEADER, "")
        if key and (len(key) > 255 or not key.isprintable()):
            raise InvalidInput.field(IDEMPOTENCY_HEADER, "Use 1–255 printable characters.")
        run, created = services.start_run(actor=self.principal, agent=self._agent(data),
                                          input=data.get("input"), trigger="api",
                                          idempotency_key=key)
        response = Response(RunSerializer(run).data,
                            status=status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK)
        if not created:
            response["Idempotent-Replayed"] = "true"
        return response

    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str) -> Response:
        run = services.cancel_run(actor=self.principal, run=self.get_object())
        return Response(RunSerializer(run).data)


@extend_schema_view(
    list=extend_schema(parameters=[
        OpenApiParameter("status", str, enum=[s for s, _ in ToolApproval.STATUSES],
                         description="Only held calls in this state (e.g. pending)"),
        OpenApiParameter("run", uuid.UUID, description="Only calls of this run")],
        summary="List held tool calls"),
    retrieve=extend_schema(summary="A held tool call"),
    approve=extend_schema(request=DecisionSerializer, responses=ToolApprovalSerializer,
                          summary="Approve the call; the run resumes"),
    reject=extend_schema(request=DecisionSerializer, responses=ToolApprovalSerializer,
                         summary="Reject the call; the run fails with the reason"),
)
class ToolApprovalViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, _RunsViewSet):
    pagination_class = ApprovalPagination
    model = ToolApproval
    serializer_class = ToolApprovalSerializer
    http_method_names = ["get", "post"]
    permission_map = {"list": "runs.read", "retrieve": "runs.read", "approve": "runs.approve",
                      "reject": "runs.approve"}

    def scoped_queryset(self) -> QuerySet[ToolApproval]:
        qs = ToolApproval.objects.select_related("environment", "run", "run__agent").filter(
            environment__in=self.environments())
        if self.action != "list":
            return qs
        params = self.request.query_params
        if approval_status := params.get("status"):
            qs = qs.filter(status=self._choice("status", approval_status,
                                               ToolApproval.STATUSES))
        if run_id := params.get("run"):
            try:
                uuid.UUID(run_id)
            except ValueError as exc:
                raise InvalidInput.field("run", f"{run_id!r} is not a run id.") from exc
            qs = qs.filter(run_id=run_id)
        return qs

    def _decide(self, request: Request, approve: bool) -> Response:
        approval = self.get_object()
        serializer = DecisionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        approval = services.decide_approval(actor=self.principal, approval=approval,
                                            approve=approve,
                                            reason=serializer.validated_data["reason"])
        return Response(ToolApprovalSerializer(approval).data)

    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk: str) -> Response:
        return self._decide(request, True)

    @action(detail=True, methods=["post"])
    def reject(self, request: Request, pk: str) -> Response:
        return self._decide(request, False)
